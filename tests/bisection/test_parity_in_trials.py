"""bisect puts the running parity (editable or not) into every trial, so parity's own
oracles (``parity verify``, ``parity bench --against``) run in full-venv trials too.

The test interpreter's parity is an editable install (``pip install -e .``): the case
that made every full-venv trial fail with "No module named parity", which bisect then
read as "bad" and blamed an innocent package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest
from tinywheels import build_wheel, make_good_venv, wheel_of_installed, write_snapshot

from parity.bisection import IndexOptions, bisect
from parity.bisection.ddmin import Verdict
from parity.bisection.oracle import ParityOracle
from parity.bisection.selfwheel import imports_this_parity, package_dir, parity_wheel
from parity.errors import BisectError


def _editable() -> bool:
    direct = distribution("parity").read_text("direct_url.json")
    return bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))


def test_wheel_of_the_running_parity_is_built_once_and_holds_its_files(tmp_path: Path) -> None:
    first = parity_wheel(tmp_path)
    names = zipfile.ZipFile(first.wheel).namelist()
    assert {"parity/__main__.py", "parity/cli/main.py", "parity/env/snapshot.schema.json"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    # The files of the running package, working-tree edits included (editable install).
    packed = zipfile.ZipFile(first.wheel).read("parity/cli/main.py")
    assert packed == (package_dir() / "cli" / "main.py").read_bytes()
    assert (first.site / "parity" / "__main__.py").is_file()
    mtime = first.wheel.stat().st_mtime_ns
    again = parity_wheel(tmp_path)
    assert again == first and again.wheel.stat().st_mtime_ns == mtime, "cached by content"


def test_this_interpreter_imports_this_parity(tmp_path: Path) -> None:
    assert imports_this_parity(Path(sys.executable))


def _click_venv(tmp_path: Path, wheels: Path, packages: dict[str, str]) -> Path:
    """A good venv without parity, holding ``packages`` (click among them)."""
    return make_good_venv(tmp_path, wheels, packages)


@pytest.mark.slow  # builds two venvs with uv from local wheels
def test_full_venv_trial_runs_the_running_parity(tmp_path: Path, wheels: Path) -> None:
    assert _editable(), "this test is about an editable parity (the test environment installs it so)"
    click = distribution("click").version
    wheel_of_installed(wheels, "click")
    build_wheel(wheels, "gone", "1.0")
    python = _click_venv(tmp_path, wheels, {"gone": "1.0", "click": click})
    good = write_snapshot(tmp_path / "good.json", {"gone": "1.0", "click": click}, python=str(python))
    # "gone" is absent on the bad side: an overlay cannot remove it, so the trial is a full venv.
    bad = write_snapshot(tmp_path / "bad.json", {"click": click}, python=str(python))
    oracle = ParityOracle(["--version"], "parity --version")
    result = bisect(good, bad, oracle, index=IndexOptions((str(wheels),), no_index=True), cache_dir=tmp_path / "c")
    venv_trials = [t for t in result.trials if t.mode == "venv"]
    assert venv_trials, [t.to_json() for t in result.trials]
    assert all(t.verdict is Verdict.GOOD for t in venv_trials), [t.to_json() for t in venv_trials]
    assert result.status == "not-reproduced" and not result.culprits, result.reason
    venv = next(p for p in (tmp_path / "c").iterdir() if p.name.startswith("venv-"))
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import parity; print(parity.__file__)"],
                           capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert Path(where.stdout.strip()).is_relative_to(venv), "parity installed into the trial venv itself"
    version = subprocess.run([str(venv / "bin" / "python"), "-m", "parity", "--version"], capture_output=True,
                             text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert version.returncode == 0 and "parity" in version.stdout, version.stderr


@pytest.mark.slow  # builds a venv with uv from local wheels
def test_parity_oracle_that_cannot_start_in_the_good_env_is_refused_up_front(tmp_path: Path, wheels: Path) -> None:
    build_wheel(wheels, "tok", "1.0")
    build_wheel(wheels, "tok", "2.0")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0"})  # no click: parity's CLI cannot start
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "2.0"}, python=str(python))
    oracle = ParityOracle(["--version"], "parity --version")
    with pytest.raises(BisectError, match=r"parity cannot run in the good environment.*click"):
        bisect(good, bad, oracle, index=IndexOptions((str(wheels),), no_index=True), cache_dir=tmp_path / "c")
