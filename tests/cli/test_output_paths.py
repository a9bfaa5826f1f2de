"""Output paths from the command line (issue 14 #6): an -o or --html naming a folder, a
place the system refuses (/proc) or a missing parent exits 2 with one line naming it,
leaves nothing behind, and (where it can be known) fails before the model runs.

Each command runs as a user runs it: a fresh ``python -m parity`` process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODEL = """\
import os
import torch
from parity.target import Pipeline


def build():
    with open(os.environ["PARITY_TEST_BUILDS"], "a") as f:
        f.write("built\\n")
    torch.manual_seed(0)
    return Pipeline(model=torch.nn.Linear(2, 2).eval(), example_inputs=[torch.ones(2), torch.zeros(2)])
"""


def _parity(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARITY_TEST_BUILDS": str(work.parent / "builds.txt")}
    return subprocess.run([sys.executable, "-m", "parity", *args], cwd=work, capture_output=True, text=True,
                          env=env, timeout=600, check=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding model.py, a snapshot, a record of the model, an empty folder and a file."""
    work = tmp_path_factory.mktemp("outputs") / "work"
    work.mkdir()
    (work / "model.py").write_text(MODEL)
    assert _parity(work, "snapshot", "-o", "snap.json").returncode == 0
    proc = _parity(work, "record", "model.py:build", "-o", "golden")
    assert proc.returncode == 0, proc.stderr
    (work / "folder").mkdir()
    (work / "a-file").write_text("not a folder")
    return work


#: command -> (arguments before the output place, the flag, whether the model runs)
COMMANDS = {
    "snapshot": (["snapshot"], "-o", False),
    "lock": (["lock", "snap.json"], "-o", False),
    "record": (["record", "model.py:build"], "-o", True),
    "verify --html": (["verify", "golden", "model.py:build"], "--html", True),
    "compare --html": (["compare", "golden", "golden"], "--html", False),
    "bench": (["bench", "model.py:build", "--min-time", "0.05", "--min-iters", "2"], "-o", True),
}
#: place -> what the one line must name
PLACES = {"folder": "folder", "/proc/parity-out": "/proc/parity-out", "missing/out": "missing",
          "a-file/out": "a-file"}


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _builds(work: Path) -> int:
    marker = work.parent / "builds.txt"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("name", list(COMMANDS))
def test_bad_output_place_is_exit_2_in_one_line_and_leaves_nothing(work: Path, name: str, place: str) -> None:
    head, flag, runs_model = COMMANDS[name]
    if name == "record" and place == "folder":
        place = "a-file"  # a record is a folder: the wrong kind here is a file
    before, builds = _listing(work), _builds(work)
    proc = _parity(work, *head, flag, place)
    assert proc.returncode == 2, (name, place, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, (name, place, proc.stderr)
    assert PLACES.get(place, place) in lines[0], (name, place, lines[0])
    assert _listing(work) == before, "nothing left behind (no temporary, no partial output)"
    if runs_model and not place.startswith("/proc"):
        assert _builds(work) == builds, f"{name}: the output place is checked before the model runs"


def test_temporary_of_a_dead_run_is_removed_and_the_cli_says_so(tmp_path: Path) -> None:
    """A kill -9 leaves ``.NAME.<owner>.*.tmp`` beside the output; the next write removes it
    and parity says so in one line on stderr."""
    from parity._io import _host_and_boot, _start_time

    host, boot = _host_and_boot()
    me, started = os.getpid(), _start_time(os.getpid())
    stale = tmp_path / f".snap.json.{host}-{boot}-{me}-{started + 1}.abc.tmp"  # this pid, another start: dead
    stale.write_text("half a snapshot")
    proc = _parity(tmp_path, "snapshot", "-o", "snap.json")
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and (tmp_path / "snap.json").is_file()
    said = [line for line in proc.stderr.splitlines() if stale.name in line]
    assert len(said) == 1 and "died" in said[0]
