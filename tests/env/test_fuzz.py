"""Issue 14 #8: fuzzed requirements files and snapshots never crash parity.

A requirements file, whatever its bytes, parses into lines and problems or raises
RequirementsError; the doctor then reports on it. A snapshot file, whatever its JSON,
loads or raises SnapshotError (a ParityError: exit 2), and what loads can be diffed and
locked. Each property is bounded (examples, sizes) to run in a few seconds.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from parity.env.differences import diff
from parity.env.doctor import doctor
from parity.env.lock import lock
from parity.env.requirements import parse_requirements
from parity.env.snapshots import load_snapshot, snapshot
from parity.errors import ParityError, RequirementsError, SnapshotError
from parity.report.terminal import diff_report

#: PARITY_FUZZ_EXAMPLES=5000 for a longer hunt; 150 keeps each property to a few seconds.
FUZZ = settings(max_examples=int(os.environ.get("PARITY_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# --- requirements ---------------------------------------------------------------------------

#: Pieces pip gives meaning to, mixed with arbitrary text.
_PIECES = st.sampled_from([
    "numpy", "torch==2.3.1+cpu", "a>=1,<2", "-r ", "-c ", "-e ", "--index-url ", "-i", "--hash=sha256:",
    "--extra-index-url", "https://", "user:p@ss@host.invalid/", "git+https://h/r.git@", "file:", "#", " #",
    "\\", "\\\n", "\n", " ", "\t", ";", " ; python_version < \"3.9\"", "@", "[extra]", "==", "===", "~=",
    "${HOME}", "~", "~nosuchuser/", "/dev/null", ".", "..", "/", "\x00", "\x1b[2J", "\r", "é", "\ufeff", "'",
    '"', "--pre", "--no-index", "-f", "--only-binary=:all:", "a" * 300, " " * 200,
])
_REQUIREMENTS_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=20)), max_size=40).map("".join)


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@FUZZ
@given(_REQUIREMENTS_TEXT)
def test_any_requirements_text_parses_or_is_refused_and_the_doctor_reports(text):
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), "other.txt", b"numpy==1.26.4\n-r main.txt\n")
        path = _write(Path(tmp), "main.txt", text.encode("utf-8", "surrogatepass"))
        try:
            reqs = parse_requirements(path)
        except RequirementsError:
            return
        json.dumps(reqs.to_json())
        report = doctor(path, snapshot=_SNAPSHOT)
        json.dumps(report.to_json())


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_a_requirements_file_parse_or_are_refused(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "req.txt", data)
        with contextlib.suppress(RequirementsError):
            doctor(path)


# --- snapshots ------------------------------------------------------------------------------

_SNAPSHOT: dict[str, Any] = snapshot()
_SNAPSHOT["packages"] = {k: v for k, v in list(_SNAPSHOT["packages"].items())[:12]}

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def _damaged_snapshot(draw: st.DrawFn) -> Any:
    """A real snapshot with up to 3 values, at any depth, replaced by any JSON."""
    snap = copy.deepcopy(_SNAPSHOT)
    snap["runtime"] = {"threadpool": {"blas:openblas:libscipy_openblas": {"version": "1", "filepath": "/x.so"}},
                       "torch": {"num_threads": 2}}
    snap["packages"]["demo"] = {"name": "demo", "version": "1.0", "vcs": {"commit_id": "ab" * 20},
                                "direct_url": {"url": "https://u:p@h.invalid/r.git", "vcs_info": {"vcs": "git"}}}
    for _ in range(draw(st.integers(1, 3))):
        node: Any = snap
        while True:
            keys = sorted(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if not isinstance(node[key], (dict, list)) or draw(st.integers(0, 3)) == 0:
                node[key] = draw(_JSON)
                break
            node = node[key]
    return snap


def _use(loaded: dict[str, Any]) -> None:
    """What the commands do with a snapshot: diff both ways, render, lock, doctor."""
    for a, b in ((loaded, _SNAPSHOT), (_SNAPSHOT, loaded)):
        result = diff(a, b)
        Console(file=io.StringIO(), width=100).print(diff_report(json.loads(json.dumps(result.to_json()))))
    json.dumps(lock(loaded).to_json())


@FUZZ
@given(st.one_of(_JSON, _damaged_snapshot()))
def test_any_json_loads_as_a_snapshot_or_is_refused_with_snapshot_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "snap.json", json.dumps(data).encode())
        try:
            loaded = load_snapshot(path)
        except SnapshotError as exc:
            assert str(path) in str(exc)
            return
        with contextlib.suppress(SnapshotError):
            _use(loaded)
        req = _write(Path(tmp), "req.txt", b"numpy==1.0\ntorch\n")
        doctor(req, snapshot=loaded)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_a_snapshot_file_are_refused_with_one_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "snap.json", data)
        try:
            load_snapshot(path)
        except ParityError as exc:
            assert isinstance(exc, SnapshotError) and str(path) in str(exc)
