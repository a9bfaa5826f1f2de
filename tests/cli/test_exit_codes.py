"""The exit-code contract: 0 holds, 1 finding, 2 user error, 3 parity's own bug.

A bug prints one line naming the file that holds its traceback (under parity's cache);
``PARITY_DEBUG=1`` prints the traceback too. A reader closing stdout early
(``parity diff a b | head -2``) does not change the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs `parity ARGS` after making the library call behind `parity diff` raise.
_PLANTED = """\
import sys
import parity.env.differences

module = sys.modules["parity.env.differences"]


def boom(*args, **kwargs):
    raise RuntimeError("planted internal error\\x1b[2J")

module.diff = boom
sys.argv = ["parity", *sys.argv[1:]]
from parity.cli.main import run
run()
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PARITY_DEBUG"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def _planted(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _PLANTED, "diff", "a.json", "b.json"], capture_output=True,
                          text=True, env=_env(tmp_path, **extra), cwd=tmp_path, timeout=120, check=False)


def test_planted_internal_error_exits_3_with_one_line_naming_the_saved_traceback(tmp_path: Path) -> None:
    proc = _planted(tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr
    assert "bug" in lines[0] and "RuntimeError" in lines[0]
    crashes = list((tmp_path / "cache" / "parity" / "crash").iterdir())
    assert len(crashes) == 1 and str(crashes[0]) in lines[0]
    assert crashes[0].name.endswith(f"-{crashes[0].name.rsplit('-', 1)[1]}")
    saved = crashes[0].read_text()
    assert "Traceback (most recent call last)" in saved and "planted internal error" in saved
    assert "parity diff a.json b.json" in saved
    assert not [p for p in crashes[0].parent.iterdir() if p.name.startswith(".")], "no temporary left"


def test_parity_debug_prints_the_traceback_too(tmp_path: Path) -> None:
    proc = _planted(tmp_path, PARITY_DEBUG="1")
    assert proc.returncode == 3
    assert "Traceback (most recent call last)" in proc.stderr and "planted internal error" in proc.stderr
    assert "bug in parity" in proc.stderr.strip().splitlines()[-1]


def test_traceback_that_cannot_be_saved_still_exits_3_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    proc = _planted(tmp_path)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not be saved" in lines[0] and "PARITY_DEBUG=1" in lines[0]


def test_in_process_bug_is_exit_3(run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib

    module = importlib.import_module("parity.env.differences")

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("inputs")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(module, "diff", boom)
    code, out, err = run_cli("diff", "a", "b")
    assert code == 3 and out == "" and len(err.strip().splitlines()) == 1 and "KeyError" in err


def test_help_states_the_four_exit_codes(run_cli) -> None:
    code, out, _ = run_cli("--help")
    assert code == 0
    for line in ("0  parity holds", "1  a finding", "2  the command could not do its job", "3  a bug in parity"):
        assert line in out, out


def test_click_usage_errors_are_exit_2(run_cli, tmp_path: Path) -> None:
    assert run_cli("diff")[0] == 2  # missing argument
    assert run_cli("diff", "--no-such-flag")[0] == 2
    assert run_cli("lock", str(tmp_path / "missing.json"))[0] == 2


def test_user_error_line_carries_no_control_characters(run_cli, tmp_path: Path) -> None:
    # A path (or a name from a record) quoted in the message must not reach the terminal raw.
    code, out, err = run_cli("diff", str(tmp_path / "snap\x1b[2J\x9b.json"), "current")
    assert code == 2 and out == ""
    assert "\x1b" not in err and "\x9b" not in err and "snap\\x1b[2J" in err
    assert len(err.strip().splitlines()) == 1


def _snapshot(path: Path, version: str, count: int = 300) -> Path:
    snap = {"schema": "parity.snapshot/1", "meta": {},
            "python": {"version": "3.11.0", "implementation": "CPython", "executable": "/py"},
            "platform": {"system": "Linux"}, "cpu": {},
            "packages": {f"pkg-{i:03d}": {"name": f"pkg-{i:03d}", "version": version} for i in range(count)},
            "env_vars": {}}
    path.write_text(json.dumps(snap))
    return path


@pytest.mark.parametrize("as_json", [False, True])
def test_closed_stdout_pipe_keeps_the_exit_code(tmp_path: Path, as_json: bool) -> None:
    """The reader is gone before parity writes a byte: every write hits EPIPE."""
    a, b = _snapshot(tmp_path / "a.json", "1.0"), _snapshot(tmp_path / "b.json", "2.0")
    for other, expected in ((a, 0), (b, 1)):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = subprocess.run([sys.executable, "-m", "parity", "diff", str(a), str(other),
                                   *(["--json"] if as_json else [])], stdout=write_end, stderr=subprocess.PIPE,
                                  text=True, env=_env(tmp_path), timeout=120, check=False)
        finally:
            os.close(write_end)
        assert proc.returncode == expected, proc.stderr
        assert "BrokenPipe" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_head_reading_two_lines_keeps_the_exit_code(tmp_path: Path) -> None:
    # 3000 rows: far more than a pipe holds, so parity is still writing when head exits.
    a, b = _snapshot(tmp_path / "a.json", "1.0", 3000), _snapshot(tmp_path / "b.json", "2.0", 3000)
    script = f"{sys.executable} -m parity diff {a} {b} | head -2 >/dev/null; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=120, check=False)
    assert proc.stdout.strip() == "1", proc.stderr
