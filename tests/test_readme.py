"""The README's commands run as tests (Polygraphy's tests/test_examples.py habit).

The set-up commands cannot run here (they build a venv from the network), so their
text is pinned against .ci/run, and the part after set-up (``parity demo``) runs with
this interpreter. The walkthrough (serving.py, record, verify --html) runs verbatim in a
temporary folder with the real MiniLM weights as ``assets/model``, with ``parity`` on
PATH meaning this interpreter's parity.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from parity.errors import EXIT_BUG, EXIT_FINDING, EXIT_OK, EXIT_USAGE
from parity.records.budget import DEFAULT_FREE_MARGIN, DEFAULT_MAX_SIZE
from parity.report.html import MAX_PLOT_POINTS
from readme_tools import (
    REPO,
    code_blocks,
    headings,
    lock_pins,
    parity_env,
    run,
    section,
    serving_folder,
)

DEMO_SETUP = "python3 -m venv .venv && .venv/bin/pip install -q --no-deps -r requirements/demo.lock -e ."
WALKTHROUGH = ("## Your own model", "## Record on the research box, verify on the production box", "## Reading the report")


def top_commands() -> list[str]:
    return [block.strip() for block in code_blocks(section("## Two commands on a fresh machine"), "bash")]


def test_setup_commands_are_the_ones_ci_runs():
    demo, tests = top_commands()
    ci = (REPO / ".ci" / "run").read_text()
    verbatim = re.search(r"# --- the README's test command, verbatim ---\n(.*?)\n# ---", ci, flags=re.DOTALL)
    assert verbatim is not None
    assert tests == verbatim.group(1).strip()
    assert demo == f"{DEMO_SETUP} && .venv/bin/parity demo"
    assert tests.startswith("python3 -m venv .venv && .venv/bin/pip install -q --no-deps -r requirements/test.lock -e . && ")
    assert (REPO / "requirements" / "demo.lock").is_file()


def test_demo_lock_has_what_the_demo_imports():
    """The demo runs from requirements/demo.lock alone: torch, rich, click, safetensors (plotly.js ships inside parity)."""
    lock = (REPO / "requirements" / "demo.lock").read_text().lower()
    for name in ("torch==", "rich==", "click==", "safetensors==", "threadpoolctl==", "numpy=="):
        assert f"\n{name}" in lock, name


def test_reading_the_report_matches_the_renderer():
    assert f"Past {MAX_PLOT_POINTS} layers" in section("## Reading the report")


@pytest.fixture
def parity_on_path(tmp_path: Path) -> dict[str, str]:
    return parity_env(tmp_path)


@pytest.mark.slow
def test_first_command_runs_the_demo(tmp_path, parity_on_path):
    demo = top_commands()[0]
    assert demo.startswith(DEMO_SETUP + " && ")
    after_setup = demo[len(DEMO_SETUP + " && "):].replace(".venv/bin/parity", "parity")
    work = tmp_path / "clone"
    work.mkdir()
    proc = run(after_setup, work, parity_on_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for verdict_line in ("PASS               Another thread count", "FAIL               Tokenizer setting changed",
                         "FAIL               One weight tensor changed", "FAIL               Dropout left on"):
        assert verdict_line in proc.stdout
    assert "All reports: parity-demo/index.html" in proc.stdout
    assert (work / "parity-demo" / "index.html").is_file()


@pytest.mark.slow
def test_walkthrough_runs_verbatim(tmp_path, parity_on_path, minilm_dir):
    text = "".join(section(title) for title in WALKTHROUGH)
    (python_block,) = code_blocks(text, "python")
    filename = python_block.splitlines()[0].removeprefix("# ").strip()
    assert filename == "serving.py"
    (tmp_path / filename).write_text(python_block)
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "model").symlink_to(minilm_dir, target_is_directory=True)
    commands = [line for block in code_blocks(text, "bash") for line in block.splitlines() if line.strip()]
    assert [c.split()[1] for c in commands] == ["record", "verify"]
    for command in commands:
        proc = run(command, tmp_path, parity_on_path)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    page = (tmp_path / "report.html").read_text()
    assert "PASS: the model on B behaves like the reference on A." in page
    assert "data-layers-total='" in page and "data-layers-total='0'" not in page


@pytest.mark.slow
def test_record_reference_commands_run_from_the_repository_root(parity_on_path, tmp_path):
    (block,) = code_blocks(section("## parity record (reference)"), "bash")
    # Run in a copy of the part of the tree the commands use, so nothing lands in the repo.
    work = tmp_path / "repo"
    (work / "tests").mkdir(parents=True)
    (work / "tests" / "models.py").write_text((REPO / "tests" / "models.py").read_text())
    proc = run(block, work, parity_on_path)
    assert proc.returncode == 0, proc.stderr
    assert (work / "golden" / "manifest.json").is_file()
    assert (work / "golden" / "activations").is_dir()  # --capture full


@pytest.mark.slow
def test_bisect_commands_run(parity_on_path, tmp_path):
    (block,) = code_blocks(section("## Bisect"), "bash")
    proc = run(block, tmp_path, parity_on_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to bisect" in (proc.stdout + proc.stderr).lower() or "no difference" in (proc.stdout + proc.stderr).lower()


def test_lock_comments_point_at_sections_that_exist():
    for lock in sorted((REPO / "requirements").glob("*.lock")):
        for title in re.findall(r"see README, '([^']+)'", lock.read_text()):
            assert title in headings(), f"{lock.name} points at README section {title!r}"


def _min_python(spec: str) -> Version | None:
    """The lowest 3.x (x < 20) a Requires-Python specifier allows."""
    allowed = [Version(f"3.{minor}") for minor in range(20) if Version(f"3.{minor}") in SpecifierSet(spec)]
    return allowed[0] if allowed else None


def test_python_versions_stated_are_the_locks_own():
    """The README's "CPython 3.11 or newer" is the strictest Requires-Python among the
    pinned releases (read from this environment, which test.lock built), and the packages
    it names are ones that need it, at the versions pinned."""
    needs: dict[str, Version] = {}
    for name, version in lock_pins("test.lock").items():
        try:
            meta = importlib.metadata.metadata(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if meta["Version"] == version.split("+")[0] and meta.get("Requires-Python"):
            needs[name] = _min_python(meta["Requires-Python"]) or Version("3.0")
    strictest = max(needs.values())
    text = " ".join(section("## Two commands on a fresh machine").split())
    assert f"**CPython {strictest} or newer**" in text
    named = re.findall(r"pin ([\w-]+) ([\d.]+) and ([\w-]+) ([\d.]+), which require it", text)
    assert named, "the README names the packages that need it"
    for name, version in zip(named[0][::2], named[0][1::2]):
        assert lock_pins("test.lock")[name] == version and needs[name] == strictest, name
    assert 'requires-python = ">=3.9"' in (REPO / "pyproject.toml").read_text()
    assert "parity itself declares Python 3.9+" in text


def test_exit_codes_documented_are_the_ones_parity_uses():
    text = section("## Commands")
    for code, meaning in ((EXIT_OK, "parity holds"), (EXIT_FINDING, "a divergence or regression"),
                          (EXIT_USAGE, "parity could not do the job"), (EXIT_BUG, "a bug in parity itself")):
        assert f"**{code}** {meaning}" in text
    assert "PARITY_DEBUG=1" in text
    walkthrough = section("## Record on the research box, verify on the production box")
    assert "3: a bug in parity" in walkthrough


def test_max_size_default_is_the_one_record_uses():
    assert DEFAULT_MAX_SIZE == 20 * 10**9 and DEFAULT_FREE_MARGIN == 10**9
    text = " ".join(section("## Record on the research box, verify on the production box").split())
    assert "`--max-size` (default: the smaller of 20 GB and the free space minus 1 GB)" in text


def test_artifact_targets_are_called_code():
    text = " ".join(section("## Your own model").split())
    assert "**A TARGET is code**" in text and "unpickled" in text


@pytest.mark.slow
def test_embedding_example_pools_over_real_tokens_only(tmp_path, minilm_dir, monkeypatch):
    """A sentence embeds the same alone and padded into a batch with a longer one (the
    README's mean over all positions gave cosine 0.64 there)."""
    import torch

    serving_folder(tmp_path, minilm_dir)
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("readme_serving", tmp_path / "serving.py")
    assert spec is not None and spec.loader is not None
    serving = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serving)
    pipe = serving.build()
    sentence = "a short example"
    longer = "a much longer sentence, with many more words in it, pads the short one in its batch"

    def embed(texts: list[str]) -> torch.Tensor:
        inputs = pipe.preprocess(texts)
        with torch.no_grad():
            return pipe.run_postprocess(pipe.model(**inputs), inputs)

    alone, batched = embed([sentence])[0], embed([sentence, longer])[0]
    assert torch.nn.functional.cosine_similarity(alone, batched, dim=0) > 0.9999
    inputs = pipe.preprocess([sentence, longer])
    with torch.no_grad():
        unmasked = pipe.model(**inputs).last_hidden_state.mean(dim=1)[0]
    assert torch.nn.functional.cosine_similarity(alone, unmasked, dim=0) < 0.99  # what the mask prevents


@pytest.mark.slow
def test_installing_parity_into_your_environment_runs_as_written(tmp_path):
    """The README's three lines, as written, in a fresh venv and a copy of the clone:
    parity runs afterwards, pip check is clean, and torch was not pulled in."""
    (block,) = code_blocks(section("## parity in your own A and B environments"), "bash")
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, clone / name)
    shutil.copytree(REPO / "src", clone / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = parity_env(tmp_path)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    for line in [line for line in block.splitlines() if line.strip()]:
        proc = run(line, clone, env)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    check = run("pip check && parity --version && parity snapshot -o snap.json", clone, env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "parity, version" in check.stdout
    assert run("python -c 'import torch'", clone, env).returncode != 0
