"""Terminal reports: one function per result type, each taking the result's JSON (its
``to_json()``, or an object typed by a Protocol where the JSON lacks a figure) and
returning a rich renderable. Nothing here prints: the CLI chooses a report and prints it
(soft-wrapped, see :mod:`parity.report.terminal._markup`). Numbers are written by
:mod:`parity.report._format`, the same rules as the HTML report.

Importing this package imports no rich; building a report does.
"""

from __future__ import annotations

from parity.report.terminal.bench import bench_comparison_report, bench_report
from parity.report.terminal.bisect import bisect_report, cache_report, trial_done, trial_started
from parity.report.terminal.demo import demo_progress, demo_report
from parity.report.terminal.diff import diff_report
from parity.report.terminal.doctor import doctor_report
from parity.report.terminal.export import export_report
from parity.report.terminal.load import export_load_report, load_report
from parity.report.terminal.lock import lock_report
from parity.report.terminal.record import record_report
from parity.report.terminal.snapshot import snapshot_report
from parity.report.terminal.verify import verify_report

__all__ = [
    "bench_comparison_report", "bench_report", "bisect_report", "cache_report", "demo_progress", "demo_report",
    "diff_report", "doctor_report", "export_load_report", "export_report", "load_report", "lock_report", "record_report", "snapshot_report",
    "trial_done", "trial_started", "verify_report",
]
