"""The terminal report of ``parity export`` (``ExportResult.to_json()``): verdict and
artifact, findings, the parity check per case, and the side-by-side benchmark."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import esc, group, markup

if TYPE_CHECKING:
    from rich.console import RenderableType

_COLOUR = {"error": "red", "warning": "yellow"}


def export_report(doc: Mapping[str, Any]) -> RenderableType:
    """Verdict, artifact, inputs and dynamic dimensions, findings, check and bench tables."""
    verdict = "[green]PASS[/]" if doc["ok"] else "[red]FAIL[/]"
    parts: list[Any] = [
        markup(f"{verdict} {esc(doc['format'])} artifact {esc(doc['out'])} ({fmt.size(doc['size_bytes'])}, "
               f"exported in {fmt.seconds(doc['export_seconds'])})"),
        markup(f"inputs {esc(', '.join(doc['input_names']))}; dynamic: {esc(_dynamic(doc['dynamic']))}"),
    ]
    for f in doc["findings"]:
        parts.append(markup(f"[{_COLOUR.get(f['severity'], 'blue')}]{esc(f['severity'])}[/] {esc(f['message'])}"))
    if doc["check"] is not None:
        parts.extend(_check(doc["check"]))
    if doc["bench"] is not None:
        parts.extend(_bench(doc["bench"]))
    return group(parts)


def _dynamic(dynamic: Mapping[str, Mapping[str, str]]) -> str:
    parts = [f"{name}[{','.join(f'{d}:{label}' for d, label in dims.items())}]" for name, dims in dynamic.items()]
    return " ".join(parts) or "none (static shapes)"


def _check(check: Mapping[str, Any]) -> list[Any]:
    from rich.table import Table

    table = Table(title="parity check: eager vs artifact")
    for col in ("case", "shapes", "result", "max abs", "worst output"):
        table.add_column(col)
    for case in check["cases"]:
        worst = max(case["outputs"], key=lambda o: o["metrics"]["max_abs"] or 0.0, default=None)
        result = "[green]ok[/]" if case["ok"] else f"[red]{esc(case['error'] or 'diverged')}[/]"
        if case.get("skipped"):
            result = f"[yellow]skipped: {esc(case['skipped'])}[/]"
        table.add_row(esc(case["label"]), esc(_shapes(case["shapes"])), result,
                      fmt.num(worst["metrics"]["max_abs"]) if worst else fmt.MISSING,
                      esc(worst["name"]) if worst else fmt.MISSING)
    parts: list[Any] = [table]
    tol = check.get("tolerance") or {}
    parts.append(markup(f"tolerances: {esc(tol.get('basis', 'per dtype'))}"))
    subs = check["submodules"]
    if subs:
        diverged = [s["module"] for s in subs if s["status"] == "diverged"]
        parts.append(markup(f"submodules compared: {esc(check['submodules_compared'])} of {len(subs)}; "
                            f"diverged: {esc(', '.join(diverged[:5]) or 'none')}"))
    return parts


def _shapes(shapes: Mapping[str, list[int]]) -> str:
    """Inputs grouped by shape: token inputs usually share one."""
    groups: dict[str, list[str]] = {}
    for name, shape in shapes.items():
        groups.setdefault("x".join(map(str, shape)), []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{s} ({', '.join(n)})" for s, n in groups.items())


def _bench(bench: Mapping[str, Any]) -> list[Any]:
    from rich.table import Table

    table = Table(title=f"eager vs artifact, batch {esc(bench['batch_size'])} (model stage)")
    for col in ("", "p50", "p99", "items/s", "load", "peak RSS", "file"):
        table.add_column(col)
    for side in (bench["eager"], bench["artifact"]):
        table.add_row(esc(side["label"]), fmt.seconds(side["p50"]), fmt.seconds(side["p99"]),
                      fmt.num(side["items_per_s"]), fmt.seconds(side["load_seconds"]),
                      fmt.size(side["peak_rss_bytes"]), fmt.size(side["file_bytes"]))
    low, high = bench["ratio_ci"]
    line = markup(f"time ratio artifact/eager {fmt.ratio(bench['ratio'])} (95% CI {fmt.ratio_range(low, high)}): "
                  f"{esc(bench['verdict'])}")
    return [table, line]
