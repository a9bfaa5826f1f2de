"""Journey: record on the research box (A), check the production box (B).

A and B are real venvs; B runs older transformers, tokenizers and numpy releases (and
textprep 1.1 instead of 1.0). Each command is a fresh process of that venv's `parity`.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from journey_tools import B_RELEASES, Journey, Venv

pytestmark = pytest.mark.slow


def _env_items(doc: dict) -> dict[str, dict]:
    return {i["name"]: i for i in doc["env_diff"]["items"] if i.get("category") == "package"}


def test_record_in_a_wrote_capture_calibration_and_baseline(research: Journey) -> None:
    golden = research.work / "golden"
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["capture"] == "full" and manifest["target"] == "serving.py:build"
    assert manifest["calibrated"] is True
    assert (golden / "bench.json").is_file() and any((golden / "activations").iterdir())
    assert json.loads((research.work / "research.json").read_text())["packages"]["parity"]["editable"]


def test_full_capture_over_max_size_stops_and_leaves_nothing(research: Journey, venv_a: Venv) -> None:
    before = sorted(p.name for p in research.work.iterdir())
    step = research.parity(venv_a, "record", "serving.py:build", "-o", "too-big", "--capture", "full",
                           "--max-size", "1M", ok=(2,))
    assert "--max-size" in step.stderr and "--capture stats" in step.stderr, step.describe()
    assert sorted(p.name for p in research.work.iterdir()) == before


def test_verify_in_b_passes_and_names_the_package_differences(research: Journey, venv_b: Venv) -> None:
    step = research.parity(venv_b, "verify", "golden", "serving.py:build", "--json", "--html", "report.html")
    doc = step.json()
    assert doc["verdict"] == "PASS-with-warnings", doc["reason"]
    assert not doc["first_divergent_layer"] and not doc["first_divergent_stage"]
    items = _env_items(doc)
    for name, version in B_RELEASES.items():
        assert items[name]["b"] == version and items[name]["risk"] == "high", items.get(name)
    page = (research.work / "report.html").read_text()
    assert "data-layers-total='0'" not in page


def test_verify_max_slowdown_in_b(research: Journey, venv_b: Venv) -> None:
    """Terminal report: PASS with the speed comparison, and the verdict line never calls
    a high-risk difference low-risk."""
    step = research.parity(venv_b, "verify", "golden", "serving.py:build", "--max-slowdown", "10")
    head = step.stdout[: step.stdout.find("Environment")]
    assert "PASS" in head and "low-risk" not in head, head
    assert "slower" not in head.lower() or "not slower" in head.lower(), head
    # counts agree between the headline and the table
    table = re.search(r"Environment: (\d+) difference", step.stdout)
    assert table, step.stdout
    for said in re.findall(r"differs in (\d+) place", " ".join(head.split())):
        assert said == table.group(1), f"headline says {said}, the table lists {table.group(1)}"


def test_diff_in_b_lists_the_three_releases_as_high_risk(research: Journey, venv_b: Venv) -> None:
    step = research.parity(venv_b, "diff", "research.json", "current", "--json", ok=(1,))
    items = {i.get("name"): i for i in step.json()["items"] if i.get("category") == "package"}
    assert set(B_RELEASES) | {"textprep"} <= set(items), sorted(items)
    for name, version in B_RELEASES.items():
        assert items[name]["b"] == version and items[name]["risk"] == "high", items[name]


def test_same_environment_diffs_empty(research: Journey, venv_a: Venv) -> None:
    """Two runtime snapshots of one environment (BLAS libraries and all) do not differ."""
    for i in range(2):
        research.parity(venv_a, "snapshot", "--runtime", "-o", f"runtime-{i}.json")
    step = research.parity(venv_a, "diff", "runtime-0.json", "runtime-1.json", ok=(0, 1))
    assert step.returncode == 0, step.describe()


def test_bench_against_the_record_in_b(research: Journey, venv_b: Venv) -> None:
    """Same torch, same machine: no regression (a loaded machine may make the answer
    inconclusive, never 'slower')."""
    step = research.parity(venv_b, "bench", "serving.py:build", "--against", "golden", "--min-time", "1",
                           "--json")
    assert step.json()["comparison"]["regression"] is False, step.describe()


def test_bench_against_a_model_defined_in_the_target_file(research: Journey, venv_b: Venv) -> None:
    """The model's class lives in textmodel.py: B's process must see the same model as A's."""
    # Exit 1 (slower) is a timing verdict on a shared machine, not what this checks: the
    # bug was exit 2, B refusing A's baseline as "another model".
    step = research.parity(venv_b, "bench", "textmodel.py:build", "--against", "golden-text", "--min-time", "1",
                           "--json", ok=(0, 1))
    comparison = step.json()["comparison"]
    assert comparison is not None and comparison["stages"], step.describe()


def test_verify_text_model_in_b_fails_at_preprocess(research: Journey, venv_b: Venv) -> None:
    """textprep 1.1 lowercases: B's token ids differ from A's; verify says so (exit 1),
    and --max-slowdown on a class defined in the target file still measures (no exit 2)."""
    step = research.parity(venv_b, "verify", "golden-text", "textmodel.py:build", "--max-slowdown", "50",
                           "--json", ok=(1,))
    doc = step.json()
    assert doc["verdict"] == "FAIL" and doc["first_divergent_stage"] == "preprocess", doc["reason"]
    assert doc["performance"] is not None
    assert "textprep" in _env_items(doc)


def test_compare_two_records_and_a_closed_pipe(research: Journey, venv_b: Venv) -> None:
    """B's own record compares with A's without running a model; `| head` keeps the exit code."""
    research.parity(venv_b, "record", "serving.py:build", "-o", "golden-b", "--capture", "full")
    step = research.parity(venv_b, "compare", "golden", "golden-b", "--html", "compare.html")
    assert "PASS" in step.stdout
    bash = shutil.which("bash")
    assert bash
    piped = research.command("B", [bash, "-c", f"'{venv_b.parity_script}' compare golden golden-b | head -1; "
                                               "exit ${PIPESTATUS[0]}"])
    assert len(piped.stdout.splitlines()) == 1 and piped.stderr.strip() == "", piped.describe()


def test_git_lfs_pointer_in_place_of_the_weights(research: Journey, venv_b: Venv) -> None:
    """The classic case: the weights came down as a git-LFS pointer. Exit 2, naming the
    file and `git lfs pull`."""
    lfs = research.work / "lfs-clone"
    model = lfs / "assets" / "model"
    model.mkdir(parents=True)
    for f in (research.work / "assets" / "model").iterdir():
        if f.is_file() and f.name != "model.safetensors":
            (model / f.name).symlink_to(f)
    (model / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db\nsize 90868376\n")
    shutil.copy(research.work / "serving.py", lfs / "serving.py")
    step = research.command("B", [str(venv_b.parity_script), "verify", str(research.work / "golden"),
                                  "serving.py:build"], ok=(2,), cwd=lfs)
    assert "model.safetensors" in step.stderr and "git lfs pull" in step.stderr, step.describe()
