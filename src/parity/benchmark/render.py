"""Rich renderables for ``parity.bench/1`` results and their comparisons.

Functions take the JSON dicts (``to_json()`` output or a file read back) and return a
renderable; printing is the caller's job (the CLI, or ``report/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_STAGE_ORDER = ("preprocess", "model", "postprocess", "end_to_end")
_VERDICT_SHORT = {"no significant change": "no sig. change"}
_VERDICT_STYLE = {"slower": "bold red", "faster": "green", "no significant change": "dim"}


def format_seconds(seconds: float | None) -> str:
    """Scale seconds to ns/µs/ms/s so the figure has an O(1) magnitude (for humans)."""
    if seconds is None:
        return "?"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_range(low: float | None, high: float | None) -> str:
    """A CI as "12.5-12.7 µs": both ends in the unit of the larger, "?" for an unknown end."""
    ref = high if high is not None else low
    if ref is None:
        return "?"
    unit = format_seconds(ref).split(" ")[1]
    scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}[unit]
    ends = ["?" if v is None else f"{v / scale:.3g}" for v in (low, high)]
    return f"{ends[0]}-{ends[1]} {unit}"


def bench_renderable(result: Mapping[str, Any]) -> Any:
    """Header, per-stage table (p50/p90/p99 with CIs, mean, IQR) and warnings."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text(_bench_header(result), style="bold"), _stage_table(result)]
    parts.append(Text(_bench_footer(result)))
    parts.extend(Text(f"warning: {w}", style="yellow") for w in result.get("warnings") or ())
    return Group(*parts)


def comparison_renderable(comparison: Mapping[str, Any], limit: int = 10) -> Any:
    """Verdict line, per-stage ratios with CIs, then the top ``limit`` suspects."""
    from rich.console import Group
    from rich.text import Text

    style = "bold red" if comparison["regression"] else "bold"
    parts: list[Any] = [Text(f"{comparison['verdict'].upper()}: {comparison['reason']}", style=style),
                        _ratio_table(comparison)]
    attribution = comparison.get("attribution")
    if attribution:
        parts.extend(_attribution_lines(attribution[:limit]))
    elif attribution == []:
        parts.append(Text("environments are identical: no difference to attribute", style="dim"))
    parts.extend(Text(f"warning: {w}", style="yellow") for w in comparison.get("warnings") or ())
    for m in comparison.get("forced_mismatches") or ():
        parts.append(Text(f"forced past: {m}", style="yellow"))
    return Group(*parts)


def _bench_header(result: Mapping[str, Any]) -> str:
    threads = (result.get("threads") or {}).get("torch")
    return (f"{result.get('target') or (result.get('model') or {}).get('class')}: batch {result['batch_size']}, "
            f"{result.get('items')} items per call, {threads} torch threads")


def _bench_footer(result: Mapping[str, Any]) -> str:
    tp = result.get("throughput") or {}
    rate = tp.get("items_per_s")
    cold = (result.get("cold_first_call") or {}).get("end_to_end")
    rss = result.get("peak_rss_bytes")
    line = f"throughput {rate:.4g} {tp.get('unit', 'items/s')}" if rate else "throughput ?"
    line += f" | cold first call {format_seconds(cold)} | load {format_seconds(result.get('load_seconds'))}"
    if rss:
        line += f" | peak RSS {rss / 2**20:.0f} MiB"
    gpu = result.get("gpu")
    if gpu:
        line += f" | {gpu.get('device')} peak allocated {gpu.get('peak_allocated_bytes', 0) / 2**20:.0f} MiB"
    return line


def _stage_table(result: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("stage", "calls", "p50 (95% CI)", "p90", "p99", "mean", "IQR/p50"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for name in _ordered(result["stages"]):
        s = result["stages"][name]
        spread = f"{s['iqr'] / s['p50']:.0%}" if s["p50"] > 0 else "?"
        table.add_row(name, str(s.get("n", len(s["samples"]))),
                      f"{format_seconds(s['p50'])} ({format_range(*s['ci']['p50']).rsplit(' ', 1)[0]})",
                      format_seconds(s["p90"]), format_seconds(s["p99"]), format_seconds(s["mean"]),
                      spread + (" noisy" if s.get("noisy") else ""))
    return table


def _ratio_table(comparison: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("stage", "baseline", "current", "ratio (95% CI)", "verdict"):
        table.add_column(col, justify="left" if col in ("stage", "verdict") else "right", no_wrap=True)
    for s in comparison["stages"]:
        verdict = _VERDICT_SHORT.get(s["verdict"], s["verdict"]) + (" REGRESSION" if s["regression"] else "")
        table.add_row(s["stage"], format_seconds(s["baseline_p50"]), format_seconds(s["current_p50"]),
                      f"{s['ratio']:.3f}x ({s['ci'][0]:.3f}-{s['ci'][1]:.3f})", verdict,
                      style=_VERDICT_STYLE.get(s["verdict"]))
    return table


def _attribution_lines(items: list[dict[str, Any]]) -> list[Any]:
    """One line per difference: rank, stages it touches, risk, what changed, why it matters."""
    from rich.text import Text

    lines: list[Any] = [Text("environment differences, most likely first:", style="bold")]
    for rank, d in enumerate(items, start=1):
        touches = ",".join(d.get("touches_slower_stage") or ()) or "-"
        line = Text(f"{rank:>2}. [{touches}] {d.get('risk')} ")
        line.append(f"{d.get('category')}:{d.get('name')}", style="bold")
        line.append(f" {_short(d.get('a'))} -> {_short(d.get('b'))}: {d.get('reason') or ''}")
        lines.append(line)
    return lines


def _short(value: Any, width: int = 40) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _ordered(stages: Mapping[str, Any]) -> list[str]:
    return [s for s in _STAGE_ORDER if s in stages] + sorted(set(stages) - set(_STAGE_ORDER))
