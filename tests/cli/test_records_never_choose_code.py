"""Records never choose code (issue 14 #1).

Without TARGET, ``parity verify DIR`` and ``parity bisect --oracle verify:DIR`` run the
recorded target only when it is a relative ``file.py:function`` inside the current folder
and outside the record, and say on stderr which file runs. Any other recorded target
(inside the record, a module, an absolute path, ``..``, an artifact) is refused with
exit 2 naming it, and its code never runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from parity.records.format import finalize_manifest

TESTS = Path(__file__).resolve().parents[1]
SERVING = f"""\
import sys
sys.path.insert(0, {str(TESTS)!r})
from models import build_tiny_text


def build():
    return build_tiny_text()
"""
PAYLOAD = "from pathlib import Path\nPath({marker!r}).write_text('ran')\n\ndef build():\n    raise SystemExit(0)\n"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real record of tests/models.py's tiny text model, its target recorded as serving.py:build."""
    work = tmp_path_factory.mktemp("golden")
    (work / "serving.py").write_text(SERVING)
    proc = subprocess.run([sys.executable, "-m", "parity", "record", "serving.py:build", "-o", "rec",
                           "--capture", "stats"], cwd=work, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return work / "rec"


def _with_target(golden: Path, root: Path, target: str, payload_in_record: str | None = None) -> Path:
    """A copy of the record whose manifest names ``target``, re-hashed so its integrity holds."""
    rec = root / "work" / "rec"
    shutil.copytree(golden, rec)
    if payload_in_record:
        (rec / "payload.py").write_text(payload_in_record)
    manifest = json.loads((rec / "manifest.json").read_text())
    fields = {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version", "parity_version")}
    finalize_manifest(rec, {**fields, "target": target})
    return rec


def _verify(rec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity", "verify", str(rec), *args], cwd=rec.parent,
                          capture_output=True, text=True, timeout=600, check=False)


def _hostile(tmp_path: Path, case: str) -> tuple[str, str | None, Path]:
    """(recorded target, payload to put inside the record, marker the payload would write)."""
    marker = tmp_path / "marker.txt"
    payload = PAYLOAD.format(marker=str(marker))
    if case == "inside the record":
        return "rec/payload.py:build", payload, marker
    if case == "module":
        return "this:build", None, marker
    if case == "absolute":
        (tmp_path / "evil.py").write_text(payload)
        return f"{tmp_path / 'evil.py'}:build", None, marker
    if case == "dotdot":
        (tmp_path / "x.py").write_text(payload)
        return "../x.py:build", None, marker
    if case == "artifact":
        (tmp_path / "work").mkdir(exist_ok=True)
        (tmp_path / "work" / "model.pt2").write_bytes(b"PK\x03\x04 not really")
        return "model.pt2", None, marker
    raise AssertionError(case)


CASES = ["inside the record", "module", "absolute", "dotdot", "artifact"]


@pytest.mark.parametrize("case", CASES)
def test_verify_refuses_a_recorded_target_it_may_not_run(golden: Path, tmp_path: Path, case: str) -> None:
    target, payload, marker = _hostile(tmp_path, case)
    rec = _with_target(golden, tmp_path, target, payload)
    if case == "inside the record":
        shutil.copy(rec / "payload.py", rec.parent / "payload.py")  # even a same-named file here is not used
    proc = _verify(rec, "--json")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert not marker.exists(), "the record's target ran"
    assert "Beautiful is better than ugly" not in proc.stdout + proc.stderr, "`this` was imported"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert target in lines[0] and "TARGET" in lines[0]


def test_the_same_record_verifies_with_target_given(golden: Path, tmp_path: Path) -> None:
    target, _, _ = _hostile(tmp_path, "module")
    rec = _with_target(golden, tmp_path, target)
    (rec.parent / "serving.py").write_text(SERVING)
    proc = _verify(rec, "serving.py:build", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"].startswith("PASS")
    assert "recorded target" not in proc.stderr


def test_a_relative_py_target_here_runs_and_says_which_file(golden: Path, tmp_path: Path) -> None:
    rec = _with_target(golden, tmp_path, "serving.py:build")
    (rec.parent / "serving.py").write_text(SERVING)
    proc = _verify(rec, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"].startswith("PASS"), "stdout holds only the JSON document"
    said = [line for line in proc.stderr.splitlines() if "recorded target" in line]
    assert said == [f"parity: running the recorded target serving.py:build ({(rec.parent / 'serving.py').resolve()})"]


def test_a_recorded_target_that_is_not_here_is_refused(golden: Path, tmp_path: Path) -> None:
    rec = _with_target(golden, tmp_path, "serving.py:build")  # no serving.py beside it
    proc = _verify(rec)
    assert proc.returncode == 2 and "serving.py" in proc.stderr and "does not exist" in proc.stderr


@pytest.mark.parametrize("case", CASES)
def test_bisect_verify_oracle_refuses_it_before_any_trial(golden: Path, tmp_path: Path, case: str) -> None:
    target, payload, marker = _hostile(tmp_path, case)
    rec = _with_target(golden, tmp_path, target, payload)
    env = json.loads((rec / "env.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps({**env, "packages": {}}))
    proc = subprocess.run([sys.executable, "-m", "parity", "bisect", "--good", str(rec), "--bad",
                           str(tmp_path / "bad.json"), "--oracle", f"verify:{rec}", "--cache-dir",
                           str(tmp_path / "cache"), "--json"], cwd=rec.parent, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and not marker.exists() and not (tmp_path / "cache").exists()
    assert target in proc.stderr and "--target" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["record", "verify", "bench", "export"])
def test_help_says_a_pt_or_pt2_target_is_code(run_cli, name: str) -> None:
    code, out, _ = run_cli(name, "--help")
    flat = " ".join(out.split())
    assert code == 0 and ".pt or .pt2 file too (loading one unpickles)" in flat and "trust" in flat
