"""Every result type has its terminal report in parity.report.terminal: what each shows,
and that text from outside (a snapshot, a record, a file) is neither markup nor a control
sequence there."""

from __future__ import annotations

import copy
import io
import re
from typing import Any

import pytest
from rich.console import Console

from parity.env.differences import diff
from parity.env.doctor import doctor
from parity.env.lock import lock
from parity.env.snapshots import snapshot
from parity.report import terminal

#: markup, an ESC sequence and a C1 CSI, as a hostile file or package name would carry them
HOSTILE = "[bold]x[/bold]\x1b[2J\x9b1m"


def _text(renderable: Any, width: int = 200) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(renderable, soft_wrap=True)
    return buf.getvalue()


def _safe(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text
    assert "[bold]x[/bold]\\x1b[2J\\x9b1m" in text  # shown as it is, escapes visible


@pytest.fixture(scope="module")
def snap() -> dict[str, Any]:
    return snapshot()


def test_snapshot_report_names_interpreter_packages_and_where_it_went(snap):
    out = _text(terminal.snapshot_report(snap, "env.json"))
    assert out.startswith(f"snapshot of {snap['python']['executable']}")
    assert f"packages: {len(snap['packages'])}" in out and out.rstrip().endswith("wrote env.json")
    assert "not saved: add -o FILE" in _text(terminal.snapshot_report(snap))
    hostile = copy.deepcopy(snap)
    hostile["cpu"]["model"] = HOSTILE
    _safe(_text(terminal.snapshot_report(hostile)))


def test_diff_report_ranks_counts_and_shows_declared(snap, tmp_path):
    b = copy.deepcopy(snap)
    b["packages"]["numpy"]["version"] = "0.0.1"
    b["env_vars"]["OMP_NUM_THREADS"] = HOSTILE
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=0.0.1\n")
    out = _text(terminal.diff_report(diff(snap, b, requirements=req).to_json()))
    assert out.index("numpy") < out.index("OMP_NUM_THREADS")
    assert ">=0.0.1 (allows this drift)" in out and "2 differences: 1 high, 1 medium, 0 low risk" in out
    _safe(out)
    assert "identical: no differences" in _text(terminal.diff_report(diff(snap, snap).to_json()))


def test_diff_values_are_shown_for_people():
    blas = {"internal_api": "mkl", "version": "2024.1", "threading_layer": "intel", "num_threads": 8}
    assert terminal.diff.display_value(blas) == "mkl 2024.1 (intel, 8 threads)"
    assert terminal.diff.display_value(None) == "-" and terminal.diff.display_value(True) == "yes"
    item = {"a": "1.0", "b": "x" * 100, "change": "changed"}
    assert terminal.diff.change_text(item) == "1.0 -> " + "x" * 47 + "…"


def test_doctor_report_one_line_per_finding_and_a_count(tmp_path, snap):
    req = tmp_path / "requirements.txt"
    req.write_text(f"numpy\n{HOSTILE}==1\n")
    report = doctor(req, snapshot=snap).to_json()
    out = _text(terminal.doctor_report(report))
    assert f"{req}:1: " in out and "    fix: " in out
    assert re.search(rf"\d+ error\(s\), \d+ warning\(s\), \d+ info in {re.escape(str(req))}\n$", out)
    assert "\x1b" not in out and "\x9b" not in out


def test_lock_report_says_what_was_written(snap, tmp_path):
    result = lock(snap)
    out = _text(terminal.lock_report(result, written_to="req.lock"))
    assert f"parity: wrote req.lock: {len(result.locked)} of {len(result.entries)} distributions locked" in out
    assert "wrote" not in _text(terminal.lock_report(result))


def test_record_report():
    doc = {"target": HOSTILE, "path": "golden", "capture": "stats", "inputs": {"count": 12}, "batches": 3,
           "layers": 40, "files": 7, "bytes": 12_345_678, "seconds": 4.25, "warnings": ["a warning"]}
    out = _text(terminal.record_report(doc))
    assert "capture stats: 12 inputs in 3 batches, 40 layer keys, 7 files, 12.3 MB, 4.25 s" in out
    assert "  warning: a warning" in out
    _safe(out)


EXPORT = {
    "ok": False, "format": "onnx", "out": "m.onnx", "size_bytes": 2_500_000, "export_seconds": 1.5,
    "input_names": ["input_ids", "attention_mask"], "dynamic": {"input_ids": {"0": "batch", "1": "seq"}},
    "findings": [{"severity": "warning", "code": "trace-warning", "message": HOSTILE, "where": None}],
    "check": {"passed": False, "tolerance": {"basis": "per dtype x10"}, "submodules": [], "submodules_compared": 0,
              "cases": [{"label": "batch 3", "shapes": {"input_ids": [3, 7], "attention_mask": [3, 7]}, "ok": False,
                         "error": None, "skipped": None,
                         "outputs": [{"name": "out", "metrics": {"max_abs": 0.000123}}]}]},
    "bench": {"batch_size": 8, "ratio": 0.8, "ratio_ci": [0.7, 0.9], "verdict": "faster",
              "eager": {"label": "eager", "p50": 0.002, "p99": 0.003, "items_per_s": 4000.0, "load_seconds": 0.5,
                        "peak_rss_bytes": 300e6, "file_bytes": None},
              "artifact": {"label": "onnx", "p50": 0.0016, "p99": 0.0021, "items_per_s": 5000.0,
                           "load_seconds": 0.2, "peak_rss_bytes": 250e6, "file_bytes": 2_500_000}},
}


def test_export_report_check_and_bench():
    out = _text(terminal.export_report(EXPORT))
    assert out.startswith("FAIL onnx artifact m.onnx (2.5 MB, exported in 1.5 s)")
    assert "input_ids[0:batch,1:seq]" in out and "3x7" in out and "1.23e-04" in out
    assert "time ratio artifact/eager 0.80x (95% CI 0.70-0.90): faster" in out and "1.6 ms" in out
    _safe(out)


BISECT = {
    "status": "found", "reason": "numpy 2.0.0 breaks it", "warnings": [HOSTILE], "n_trials": 2,
    "changes": [{"name": "numpy", "good": "1.26.4", "bad": "2.0.0", "change": "changed"}],
    "culprits": [{"name": "numpy", "good": "1.26.4", "bad": "2.0.0", "change": "changed"}], "suspects": [],
    "narrowed": [{"name": "numpy", "status": "exact", "first_bad": "2.0.0", "last_good": "1.26.4"}],
    "trials": [{"index": 1, "stage": "search", "bad_side": ["numpy"], "mode": "overlay", "why_venv": None,
                "cached": True, "verdict": "bad", "note": None, "seconds": 12.5}],
    "decisive_trial": 1, "reproduce": "PIP_NO_INDEX=1 python -m venv /tmp/x && " + "y" * 200,
}


def test_bisect_report_keeps_the_reproduce_line_whole():
    out = _text(terminal.bisect_report(BISECT), width=80)
    assert "found: numpy 2.0.0 breaks it" in out and "numpy: first bad release 2.0.0 (last good 1.26.4)" in out
    assert BISECT["reproduce"] in out.splitlines()  # one line to copy, however narrow the terminal
    assert "overlay cached" in out and "12.5 s" in out
    assert "\x1b" not in out and "\x9b" not in out


def test_bisect_trial_lines_and_cache_report():
    trial = {"index": 3, "stage": "narrow", "mode": "venv", "verdict": None, "seconds": 0.25,
             "bad_side": ["a", "b", "c", "d", "e"]}
    assert _text(terminal.trial_done(trial)) == "trial   3 narrow venv    ?          250 ms  bad side = a, b, c, d +1 more\n"
    assert _text(terminal.trial_started(dict(trial, bad_side=[]))) == \
        "trial 3 (narrow): bad side = (none: the good environment)\n"
    cache = {"path": "/c", "limit_bytes": 10**10, "limit_source": "the default", "total_bytes": 1_500_000_000,
             "entries": [{"name": HOSTILE, "kind": "venv", "bytes": 1_500_000_000, "last_used": "2026-01-01T00:00:00Z"}],
             "removed": [], "freed_bytes": 0}
    out = _text(terminal.cache_report(cache))
    assert "removed 0 entries, 0 B freed" in out and "/c: 1 entries, 1.5 GB (limit 10.0 GB, the default)" in out
    assert "\x1b" not in out


def test_demo_report_flags_an_unexpected_verdict():
    doc = {"ok": False, "reference": "demo/ref", "index": "demo/index.html", "seconds": 20.0,
           "scenarios": [{"verdict": "PASS", "expected": "FAIL", "as_expected": False, "title": HOSTILE,
                          "reason": "r " * 100, "report": "demo/a.html"}]}
    out = _text(terminal.demo_report(doc), width=60)
    assert "parity demo: 1 scenarios against the reference recorded in demo/ref (20 s)" in out
    assert "(expected FAIL)" in out and "Some verdicts differ" in out and ("r " * 100).strip() in out
    _safe(out)
    assert _text(terminal.demo_progress("step [1]")) == "parity demo: step [1]\n"
