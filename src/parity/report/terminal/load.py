"""The terminal report of a load run (``parity bench --concurrency`` / ``--scenario``) and of
eager vs artifact under load (``parity export --bench --concurrency``).

Both take JSON dicts: a ``parity.bench/1`` document with a ``load`` section, and the
``load`` side-by-side of ``parity.export/1``'s ``bench``. A comparison with a baseline is
rendered by :func:`parity.report.terminal.bench.bench_comparison_report` (levels are its rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType


def load_report(result: Mapping[str, Any]) -> RenderableType:
    """Header, one row per level (throughput, latency percentiles with CIs, CPU, memory),
    the max-QPS search when there was one, and warnings."""
    load = result.get("load") or {}
    parts: list[Any] = [plain(_header(result, load), style="bold")]
    search = load.get("search")
    if search:
        parts.append(plain(_search_line(search), style="bold"))
    parts.append(_level_table(load))
    if search:
        parts.append(_probe_table(search))
    parts.extend(plain(f"warning: {w}", style="yellow") for w in result.get("warnings") or ())
    return group(parts)


def _header(result: Mapping[str, Any], load: Mapping[str, Any]) -> str:
    name = result.get("target") or (result.get("model") or {}).get("class")
    threads = (result.get("threads") or {}).get("torch")
    if load.get("kind") == "concurrency":
        what = (f"closed loop, {load.get('mode')}, {fmt.seconds(load.get('duration_s'))} per level, "
                f"{result.get('batch_size')} item(s) per request"
                + (", model stage only" if load.get("stage") == "model" else ""))
    else:
        what = (f"LoadGen {load.get('scenario')} scenario, {load.get('workers')} worker thread(s), "
                f"{fmt.seconds(load.get('duration_s'))} per run, batch {result.get('batch_size')}")
    return f"{name}: {what}, {threads} torch threads"


def _search_line(search: Mapping[str, Any]) -> str:
    bound = fmt.seconds(search.get("p99_bound_s"))
    best = search.get("max_qps")
    if best is None:
        return f"no rate tried kept p99 under {bound} ({len(search.get('probes') or [])} probes)"
    return (f"max QPS with p99 <= {bound}: {fmt.num(best)} queries/s "
            f"({len(search.get('probes') or [])} probes; rule: {search.get('rule')})")


def _level_table(load: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    first = "clients" if load.get("kind") == "concurrency" else "scenario"
    levels = list(load.get("levels") or ())
    batched = any((lv.get("throughput") or {}).get("items_per_s") != (lv.get("throughput") or {}).get(
        "requests_per_s") for lv in levels)
    cols = [first, "n", "req/s", *(["items/s"] if batched else []), "p50 (95% CI)", "p90", "p99 (95% CI)", "CPU",
            "RSS"]
    for col in cols:
        table.add_column(col, justify="left" if col == first else "right", no_wrap=True)
    for lv in levels:
        lat, tp, cpu = lv.get("latency") or {}, lv.get("throughput") or {}, lv.get("cpu") or {}
        label = str(lv.get("concurrency")) if first == "clients" else _scenario_label(lv)
        table.add_row(label, str(lv.get("requests")), fmt.num(tp.get("requests_per_s")),
                      *([fmt.num(tp.get("items_per_s"))] if batched else []),
                      _with_ci(lat, "p50"), fmt.seconds(lat.get("p90")), _with_ci(lat, "p99"),
                      fmt.percent(cpu.get("utilisation"), digits=0) if cpu else "-",
                      fmt.size(lv.get("peak_rss_bytes")) if lv.get("peak_rss_bytes") else "-")
    return table


def _with_ci(lat: Mapping[str, Any], name: str) -> str:
    """``1.02 ms (0.99-1.04)``: the quantile and its CI, in the unit of the CI's larger end."""
    ci = (lat.get("ci") or {}).get(name) or (None, None)
    return f"{fmt.seconds(lat.get(name))} ({fmt.seconds_range(*ci).rsplit(' ', 1)[0]})"


def _scenario_label(level: Mapping[str, Any]) -> str:
    if level.get("scenario") == "server":
        return f"server {fmt.num(level.get('qps'))} qps"
    return str(level.get("scenario"))


def _probe_table(search: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), title="probes, in order", title_justify="left")
    for col in ("target qps", "completed/s", "requests", "p99 (95% CI)", "result"):
        table.add_column(col, justify="right", no_wrap=True)
    for p in search.get("probes") or ():
        ci = p.get("p99_ci") or (None, None)
        table.add_row(fmt.num(p.get("qps")), fmt.num(p.get("completed_per_s")), str(p.get("requests")),
                      f"{fmt.seconds(p.get('p99'))} ({fmt.seconds_range(*ci)})", "pass" if p.get("passed") else "fail",
                      style="green" if p.get("passed") else "dim")
    return table


def export_load_report(side: Mapping[str, Any]) -> RenderableType:
    """Eager vs artifact per concurrency level: throughput, its scaling from one client, p50."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("clients", "eager/s", "artifact/s", "art/eager", "eager xN", "art. xN", "p50 art/eager"):
        table.add_column(col, justify="right", no_wrap=True)
    for lv in side.get("levels") or ():
        e, a = lv.get("eager") or {}, lv.get("artifact") or {}
        ci = fmt.ratio_range(*(lv.get("p50_ratio_ci") or (None, None)))
        table.add_row(str(lv.get("concurrency")), fmt.num(e.get("requests_per_s")), fmt.num(a.get("requests_per_s")),
                      fmt.ratio(lv.get("throughput_ratio")), fmt.ratio(e.get("scaling")), fmt.ratio(a.get("scaling")),
                      f"{fmt.ratio(lv.get('p50_ratio'))} ({ci})")
    head = (f"under load ({side.get('mode')}, {fmt.seconds(side.get('duration_s'))} per level, "
            f"{side.get('batch_size')} item(s) per request, model stage): requests/s; "
            "xN = requests/s at N clients / at 1; p50 ratio with its 95% CI")
    parts: list[Any] = [plain(head, style="bold"), table]
    if side.get("summary"):
        parts.append(plain(str(side["summary"])))
    return group(parts)
