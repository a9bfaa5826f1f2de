"""The terminal report of a ``parity.bench/1`` result and of its comparison with a baseline.

Both take the JSON dicts (``to_json()`` output or a file read back) and return a
renderable; printing is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType

_STAGE_ORDER = ("preprocess", "model", "postprocess", "end_to_end")
_VERDICT_SHORT = {"no significant change": "no sig. change"}
_VERDICT_STYLE = {"slower": "bold red", "faster": "green", "no significant change": "dim"}


def bench_report(result: Mapping[str, Any]) -> RenderableType:
    """Header, per-stage table (p50/p90/p99 with CIs, mean, IQR) and warnings."""
    parts: list[Any] = [plain(_bench_header(result), style="bold"), _stage_table(result),
                        plain(_bench_footer(result))]
    parts.extend(plain(f"warning: {w}", style="yellow") for w in result.get("warnings") or ())
    return group(parts)


def bench_comparison_report(comparison: Mapping[str, Any], limit: int = 10) -> RenderableType:
    """Verdict line, per-stage ratios with CIs, then the top ``limit`` suspects."""
    style = "bold red" if comparison["regression"] else "bold"
    parts: list[Any] = [plain(f"{comparison['verdict'].upper()}: {comparison['reason']}", style=style),
                        _ratio_table(comparison)]
    attribution = comparison.get("attribution")
    if attribution:
        parts.extend(_attribution_lines(attribution[:limit]))
    elif attribution == []:
        parts.append(plain("environments are identical: no difference to attribute", style="dim"))
    parts.extend(plain(f"warning: {w}", style="yellow") for w in comparison.get("warnings") or ())
    parts.extend(plain(f"forced past: {m}", style="yellow") for m in comparison.get("forced_mismatches") or ())
    return group(parts)


def _bench_header(result: Mapping[str, Any]) -> str:
    threads = (result.get("threads") or {}).get("torch")
    return (f"{result.get('target') or (result.get('model') or {}).get('class')}: batch {result['batch_size']}, "
            f"{result.get('items')} items per call, {threads} torch threads")


def _bench_footer(result: Mapping[str, Any]) -> str:
    tp = result.get("throughput") or {}
    rate = tp.get("items_per_s")
    cold = (result.get("cold_first_call") or {}).get("end_to_end")
    rss = result.get("peak_rss_bytes")
    line = f"throughput {fmt.num(rate)} {tp.get('unit', 'items/s')}" if rate else "throughput ?"
    line += f" | cold first call {fmt.seconds(cold)} | load {fmt.seconds(result.get('load_seconds'))}"
    if rss:
        line += f" | peak RSS {fmt.size(rss)}"
    gpu = result.get("gpu")
    if gpu:
        line += f" | {gpu.get('device')} peak allocated {fmt.size(gpu.get('peak_allocated_bytes', 0))}"
    return line


def _stage_table(result: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("stage", "calls", "p50 (95% CI)", "p90", "p99", "mean", "IQR/p50"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for name in _ordered(result["stages"]):
        s = result["stages"][name]
        spread = fmt.percent(s["iqr"] / s["p50"], digits=0) if s["p50"] > 0 else "?"
        table.add_row(name, str(s.get("n", len(s["samples"]))),
                      f"{fmt.seconds(s['p50'])} ({fmt.seconds_range(*s['ci']['p50']).rsplit(' ', 1)[0]})",
                      fmt.seconds(s["p90"]), fmt.seconds(s["p99"]), fmt.seconds(s["mean"]),
                      spread + (" noisy" if s.get("noisy") else ""))
    return table


def _ratio_table(comparison: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("stage", "baseline", "current", "ratio (95% CI)", "verdict"):
        table.add_column(col, justify="left" if col in ("stage", "verdict") else "right", no_wrap=True)
    for s in comparison["stages"]:
        verdict = _VERDICT_SHORT.get(s["verdict"], s["verdict"]) + (" REGRESSION" if s["regression"] else "")
        table.add_row(s["stage"], fmt.seconds(s["baseline_p50"]), fmt.seconds(s["current_p50"]),
                      f"{fmt.ratio(s['ratio'])} ({fmt.ratio_range(*s['ci'])})", verdict,
                      style=_VERDICT_STYLE.get(s["verdict"]))
    return table


def _attribution_lines(items: list[dict[str, Any]]) -> list[Any]:
    """One line per difference: rank, stages it touches, risk, what changed, why it matters."""
    lines: list[Any] = [plain("environment differences, most likely first:", style="bold")]
    for rank, d in enumerate(items, start=1):
        touches = ",".join(d.get("touches_slower_stage") or ()) or "-"
        line = plain(f"{rank:>2}. [{touches}] {d.get('risk')} ")
        line.append(plain(f"{d.get('category')}:{d.get('name')}", style="bold"))
        line.append(plain(f" {_short(d.get('a'))} -> {_short(d.get('b'))}: {d.get('reason') or ''}"))
        lines.append(line)
    return lines


def _short(value: Any, width: int = 40) -> str:
    text = "-" if value is None else str(value)
    return fmt.cut(text, width)


def _ordered(stages: Mapping[str, Any]) -> list[str]:
    return [s for s in _STAGE_ORDER if s in stages] + sorted(set(stages) - set(_STAGE_ORDER))
