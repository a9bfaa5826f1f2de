"""The README's commands run as tests (Polygraphy's tests/test_examples.py habit).

The set-up commands cannot run here (they build a venv from the network), so their
text is pinned against .ci/run, and the part after set-up (``parity demo``) runs with
this interpreter. The walkthrough (serving.py, record, verify --html) runs verbatim in a
temporary folder with the real MiniLM weights as ``assets/model``, with ``parity`` on
PATH meaning this interpreter's parity.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parity.report.html import MAX_PLOT_POINTS
from readme_tools import REPO, code_blocks, parity_env, run, section

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
