"""The terminal reports of parity's C++ runner: ``export --check-cpp``'s check table and
``bench --runner cpp``'s levels (``parity.runner-bench/1``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import esc, group, markup
from parity.report.terminal.export import _check

if TYPE_CHECKING:
    from rich.console import RenderableType


def check_cpp_report(check: Mapping[str, Any]) -> RenderableType:
    """The export report's check table for the C++ run, under a line naming the process."""
    verdict = "[green]PASS[/]" if check["passed"] else "[red]FAIL[/]"
    python = "libpython mapped!" if check["libpython_mapped"] else "no Python interpreter in the process"
    head = markup(f"{verdict} C++ runner (libtorch only, pid {esc(check['pid'])}, {python}): "
                  "eager vs the artifact")
    return group([head, *_check(check)])


def runner_bench_report(doc: Mapping[str, Any]) -> RenderableType:
    """One row per concurrency level: requests, throughput (and speed-up over one client),
    latency percentiles, libtorch's intra-op threads."""
    from rich.table import Table

    table = Table(title=f"C++ runner (no Python): {esc(doc['target'])}, batch {esc(doc['batch_size'])}, "
                        f"{fmt.seconds(doc['seconds_per_level'])} per level")
    for col in ("clients", "requests", "items/s", "p50", "p90", "p99", "libtorch threads"):
        table.add_column(col)
    first = doc["levels"][0]
    for run in doc["levels"]:
        speedup = (f" ({fmt.ratio(run['items_per_s'] / first['items_per_s'])})"
                   if run is not first and first["items_per_s"] else "")
        table.add_row(esc(run["threads"]), esc(run["requests"]), f"{run['items_per_s']:.0f}{speedup}",
                      fmt.seconds(run["p50"]), fmt.seconds(run["p90"]), fmt.seconds(run["p99"]),
                      esc(run["torch_threads"]))
    python = any(r["libpython_mapped"] for r in doc["levels"])
    note = markup(f"client threads share one loaded model; {esc(doc['cpu_count'])} CPUs here; "
                  f"{'libpython WAS mapped' if python else 'no Python interpreter in the runner process'}")
    return group([table, note])
