"""Oracles: exit-code protocol, parity crashes, majority, command lookup."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from parity.bisection.ddmin import Verdict
from parity.bisection.oracle import (
    CommandOracle,
    OracleRun,
    ParityOracle,
    binary_mismatch,
    decided,
    majority,
)
from parity.bisection.trials import TrialEnv
from parity.errors import BisectError

BASE = TrialEnv("base", Path(sys.executable), None)


@pytest.mark.parametrize(("code", "verdict"), [(0, Verdict.GOOD), (1, Verdict.BAD), (2, Verdict.UNJUDGED),
                                               (3, Verdict.UNJUDGED)])
def test_exit_code_protocol(code: int, verdict: Verdict) -> None:
    run = CommandOracle([sys.executable, "-c", f"raise SystemExit({code})"]).run(BASE)
    assert run.exit_code == code and run.verdict is verdict


def test_signal_and_timeout_are_unjudged() -> None:
    killed = CommandOracle([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]).run(BASE)
    assert killed.exit_code == -9 and killed.verdict is Verdict.UNJUDGED
    slow = CommandOracle([sys.executable, "-c", "import time; time.sleep(30)"]).run(BASE, timeout=0.5)
    assert slow.exit_code is None and slow.verdict is Verdict.UNJUDGED and "timed out" in slow.stderr_tail


def test_parity_exit_codes_2_and_3_and_a_missing_parity_are_could_not_judge() -> None:
    oracle = ParityOracle(["verify", "x"], "parity verify x")
    assert oracle.classify(2, "parity: error: x: no such record") is Verdict.UNJUDGED
    assert oracle.classify(3, "parity: internal error (KeyError: 'x'): this is a bug in parity") is Verdict.UNJUDGED
    assert oracle.classify(1, "/venv/bin/python: No module named parity") is Verdict.UNJUDGED
    assert oracle.classify(1, "FAIL: layer 3 diverged") is Verdict.BAD
    # parity's crashes exit 3 now: stderr is no longer searched for a traceback.
    assert oracle.classify(1, "Traceback (most recent call last):\n  ...") is Verdict.BAD


def test_parity_missing_from_the_trial_interpreter_is_not_bad(tmp_path: Path) -> None:
    """A real interpreter without parity: Python exits 1, which must not read as "diverged"."""
    import subprocess

    from parity.bisection.trials import find_uv

    subprocess.run([find_uv(), "venv", "--quiet", "--python", sys.executable, str(tmp_path / "v")], check=True)
    env = TrialEnv("base", tmp_path / "v" / "bin" / "python", None)
    run = ParityOracle(["verify", str(tmp_path)], "parity verify").run(env)
    assert run.exit_code == 1 and "No module named parity" in run.stderr_tail
    assert run.verdict is Verdict.UNJUDGED


def test_a_crash_inside_parity_is_could_not_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the trial's parity exits 3 (one line, no traceback) and blames nothing."""
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib\n"
        "def boom(*a, **k):\n"
        "    raise RuntimeError('planted')\n"
        "importlib.import_module('parity.env.differences').diff = boom\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = TrialEnv("overlay", Path(sys.executable), tmp_path)
    run = ParityOracle(["diff", "a.json", "b.json"], "parity diff").run(env)
    assert run.exit_code == 3 and "Traceback" not in run.stderr_tail and "bug in parity" in run.stderr_tail
    assert run.verdict is Verdict.UNJUDGED


def test_python_in_the_command_is_the_trial_interpreter(tmp_path: Path) -> None:
    out = tmp_path / "which.txt"
    oracle = CommandOracle(["python", "-c", f"import sys; open({str(out)!r}, 'w').write(sys.executable)"])
    assert oracle.run(BASE).verdict is Verdict.GOOD
    assert Path(out.read_text()).parent == Path(sys.executable).parent


def test_command_not_found() -> None:
    with pytest.raises(BisectError, match="not found"):
        CommandOracle(["no-such-command-xyz"]).check(BASE)
    with pytest.raises(BisectError, match="no such executable"):
        CommandOracle(["/no/such/file"]).check(BASE)


def _run(verdict: Verdict, stderr: str = "") -> OracleRun:
    return OracleRun(0, verdict, 0.1, stderr)


def test_majority() -> None:
    assert majority([_run(Verdict.BAD), _run(Verdict.GOOD), _run(Verdict.BAD)]) is Verdict.BAD
    assert majority([_run(Verdict.GOOD), _run(Verdict.UNJUDGED), _run(Verdict.GOOD)]) is Verdict.GOOD
    assert majority([_run(Verdict.GOOD), _run(Verdict.BAD)]) is Verdict.UNJUDGED
    assert majority([_run(Verdict.GOOD), _run(Verdict.UNJUDGED), _run(Verdict.BAD)]) is Verdict.UNJUDGED


def test_binary_mismatch_markers() -> None:
    assert binary_mismatch([_run(Verdict.BAD, "ImportError: x.so: undefined symbol: foo")])
    assert binary_mismatch([_run(Verdict.BAD, "AssertionError: 3 != 4")]) is None


def test_verify_and_bench_oracles_run_parity_with_the_trial_interpreter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from parity.bisection.oracle import oracle_from_spec

    monkeypatch.chdir(tmp_path)
    for name in ("serving.py", "m.py", "r.py"):
        (tmp_path / name).write_text("def build():\n    pass\n")
    record = tmp_path / "rec"
    record.mkdir()
    (record / "manifest.json").write_text(json.dumps({"target": "serving.py:build"}))
    verify = oracle_from_spec(f"verify:{record}", (), "good.json", "bad.json")
    assert verify.argv(Path("/py")) == ["/py", "-m", "parity", "verify", str(record.resolve()), "serving.py:build"]
    assert oracle_from_spec(None, (), str(record), "bad.json").argv(Path("/py"))[3:5] == ["verify", str(record.resolve())]
    assert oracle_from_spec(None, (), "good.json", str(record)).argv(Path("/py"))[3] == "verify"
    given = oracle_from_spec(f"verify:{record}", (), "good.json", "bad.json", target="other.py:make")
    assert given.argv(Path("/py"))[-1] == "other.py:make"
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps({"schema": "parity.bench/1", "target": "m.py:build"}))
    bench = oracle_from_spec(f"bench:{baseline}", (), "good.json", "bad.json")
    assert bench.argv(Path("/py")) == ["/py", "-m", "parity", "bench", "m.py:build", "--against", str(baseline.resolve())]
    (record / "bench.json").write_text(json.dumps({"schema": "parity.bench/1", "target": "r.py:build"}))
    in_record = oracle_from_spec(f"bench:{record}", (), "good.json", "bad.json")
    assert in_record.argv(Path("/py"))[4:] == ["r.py:build", "--against", str(record.resolve())]


def test_majority_is_decided_early() -> None:
    good, bad, unj = _run(Verdict.GOOD), _run(Verdict.BAD), _run(Verdict.UNJUDGED)
    assert decided([bad, bad], 3) and majority([bad, bad], 3) is Verdict.BAD
    assert not decided([bad, good], 3)
    assert not decided([bad], 3)
    assert decided([unj, unj], 3) and majority([unj, unj], 3) is Verdict.UNJUDGED
    assert majority([bad], 3) is Verdict.UNJUDGED
