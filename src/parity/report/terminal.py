"""Rich terminal rendering of a verify/compare result (``parity.verify/1`` JSON).

Verdict first, then the sections in the order a person investigates: environment,
assets and weights, runtime state, stages, layers, predictions, performance. Long
lists are cut to their first rows with a count of what is hidden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_ROWS = 10
_STYLE = {"PASS": "bold green", "FAIL": "bold red", "PASS-with-warnings": "bold yellow"}


def render_verify(result: Mapping[str, Any], console: Any) -> None:
    """Print the report for ``result`` (a ``VerifyResult.to_json()``) on a rich Console."""
    _verdict(result, console)
    for section in (_env, _assets, _runtime, _stages, _layers, _predictions, _performance, _notes):
        section(result, console)


def _verdict(r: Mapping[str, Any], c: Any) -> None:
    from rich.panel import Panel

    verdict = str(r.get("verdict"))
    a, b = r.get("a") or {}, r.get("b") or {}
    body = f"[{_STYLE.get(verdict, 'bold')}]{verdict}[/]  {_esc(r.get('reason'))}\n" + (
        f"[dim]A: {_esc(a.get('record'))}  B: {_esc(b.get('record') or b.get('target'))}  "
        f"capture: {_esc(r.get('capture'))}[/]")
    c.print(Panel(body, title="parity verify", expand=False))
    for w in r.get("warnings") or []:
        c.print(f"[yellow]warning:[/] {_esc(w)}")


def _env(r: Mapping[str, Any], c: Any) -> None:
    items = (r.get("env_diff") or {}).get("items") or []
    _heading(c, "Environment", "same as A" if not items else f"{len(items)} difference(s), ranked by risk")
    rows = [[i.get("risk"), i.get("category"), i.get("name"), i.get("a"), i.get("b"), i.get("reason")] for i in items]
    _table(c, ["risk", "category", "name", "A", "B", "why it matters"], rows)


def _assets(r: Mapping[str, Any], c: Any) -> None:
    assets = r.get("assets") or {}
    files, params = assets.get("files") or [], assets.get("params") or []
    _heading(c, "Assets and weights", "same as A" if not (files or params) else
             f"{len(files)} file(s), {len(params)} weight tensor(s) differ")
    _table(c, ["file", "change", "A sha256", "B sha256"],
           [[f.get("path"), f.get("change"), _short_hash(f.get("a")), _short_hash(f.get("b"))] for f in files])
    _table(c, ["weight", "change", "A hash", "B hash"],
           [[p.get("name"), p.get("change"), _short_hash(p.get("a_hash")), _short_hash(p.get("b_hash"))] for p in params])


def _runtime(r: Mapping[str, Any], c: Any) -> None:
    found = r.get("runtime") or []
    _heading(c, "Runtime state", "same as A" if not found else f"{len(found)} finding(s)")
    colour = {"error": "red", "warning": "yellow"}
    for f in found[:MAX_ROWS]:
        sev = str(f.get("severity"))
        c.print(f"  [{colour.get(sev, 'dim')}]{sev}[/] {_esc(f.get('message'))}")


def _stages(r: Mapping[str, Any], c: Any) -> None:
    stages = r.get("stages") or []
    if not stages:
        return
    first = r.get("first_divergent_stage")
    _heading(c, "Stages", f"first divergent: {first}" if first else "all match")
    _table(c, ["stage", "status", "max abs", "rel L2", "mismatch"],
           [[s.get("stage"), s.get("status"), *_metric_cells(s.get("metrics"), ("max_abs", "rel_l2", "mismatch_frac"))]
            for s in stages])
    for s in stages:
        if s.get("suspects"):
            c.print(f"  can explain the {_esc(s.get('stage'))} difference: {_esc('; '.join(s['suspects'][:5]))}")
        for row in (s.get("rows") or [])[:5]:
            c.print(f"  {_esc(s.get('stage'))} {_esc(row.get('name'))}, batch {row.get('batch')} row {row.get('row')}, positions "
                    f"{row.get('positions')[:10]}:\n    A {_tokens(row.get('a'), row)}\n    B {_tokens(row.get('b'), row)}")


def _layers(r: Mapping[str, Any], c: Any) -> None:
    layers = r.get("layers") or []
    if not layers:
        return
    bad = [x for x in layers if x.get("status") == "diverged"]
    first, intro = r.get("first_divergent_layer"), r.get("first_introducing_layer")
    summary = f"{len(layers)} compared, {len(bad)} diverged" + (f"; first divergent: {first}" if first else "")
    _heading(c, "Layers (A's execution order)", summary)
    row = next((x for x in layers if x.get("key") == first), None)
    if row and isinstance(row.get("metrics"), Mapping):
        m = row["metrics"]
        c.print(f"  {_esc(first)} ({_esc(row.get('type'))}): max abs {_num(m.get('max_abs'))}, mean abs "
                f"{_num(m.get('mean_abs'))}, rel L2 {_num(m.get('rel_l2'))}, cosine {_cos(m.get('cosine'))}, "
                f"mismatch {_num(m.get('mismatch_frac'))} (atol {_num(row.get('atol'))}, rtol {_num(row.get('rtol'))})")
    if intro:
        c.print(f"  first layer that [bold]introduces[/] the error: [bold]{_esc(intro)}[/] (later layers inherit it)")
    growth = r.get("error_growth") or []
    _table(c, ["layer", "status", "max abs", "rel L2", "introduced"],
           [[g.get("key"), g.get("status"), _num(g.get("max_abs")), _num(g.get("rel_l2")), _yes_no(g.get("introduced"))]
            for g in growth])
    for side, label in (("only_a", "only in A"), ("only_b", "only in B")):
        keys = r.get(side) or []
        if keys:
            more = f" … and {len(keys) - MAX_ROWS} more" if len(keys) > MAX_ROWS else ""
            c.print(f"  {label} ({len(keys)}): {_esc(', '.join(keys[:MAX_ROWS]))}{more}")


def _predictions(r: Mapping[str, Any], c: Any) -> None:
    p = r.get("predictions")
    if not p:
        return
    parts = [f"kind {p.get('kind')}"]
    if p.get("argmax_agreement") is not None:
        parts.append(f"argmax agreement {p['argmax_agreement']:.1%}, top-{p.get('k')} overlap {p.get('topk_overlap', 0):.1%}")
    if p.get("cosine") is not None:
        parts.append(f"cosine {_cos(p.get('cosine'))}")
    parts.append(f"max abs {_num(p.get('max_abs'))}, rel L2 {_num(p.get('rel_l2'))}")
    _heading(c, "Predictions", f"{p.get('stage')} output {p.get('output') or ''}".rstrip())
    c.print("  " + "; ".join(parts))


def _performance(r: Mapping[str, Any], c: Any) -> None:
    perf = r.get("performance")
    if not perf:
        return
    _heading(c, "Performance", str(perf.get("reason") or perf.get("verdict") or ""))
    rows = [[s.get("stage"), _ms(s.get("baseline_p50")), _ms(s.get("current_p50")), _ratio(s), s.get("verdict")]
            for s in perf.get("stages") or [] if isinstance(s, Mapping)]
    _table(c, ["stage", "A p50", "B p50", "B/A (95% CI)", "verdict"], rows)


def _ms(seconds: Any) -> str:
    return f"{seconds * 1e3:.3g} ms" if isinstance(seconds, (int, float)) else "-"


def _ratio(stage: Mapping[str, Any]) -> str:
    ratio, ci = stage.get("ratio"), stage.get("ci") or []
    if not isinstance(ratio, (int, float)):
        return "-"
    return f"{ratio:.2f}x" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if len(ci) == 2 else "")


def _notes(r: Mapping[str, Any], c: Any) -> None:
    for note in r.get("notes") or []:
        c.print(f"[dim]note: {_esc(note)}[/]")


def _heading(c: Any, title: str, summary: str) -> None:
    c.print(f"\n[bold]{title}[/]: {_esc(summary)}")


def _table(c: Any, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for i, name in enumerate(head):
        # the first column holds layer keys and file paths: wrap them, never cut them
        table.add_column(name, overflow="fold" if i == 0 else "ellipsis")
    for row in rows[:MAX_ROWS]:
        table.add_row(*(_esc(_cell(v)) for v in row))
    c.print(table)
    if len(rows) > MAX_ROWS:
        c.print(f"  [dim]… and {len(rows) - MAX_ROWS} more (see --json or --html)[/]")


def _metric_cells(m: Any, names: Sequence[str]) -> list[str]:
    m = m if isinstance(m, Mapping) else {}
    return [_num(m.get(n)) for n in names]


def _tokens(values: Any, row: Mapping[str, Any]) -> str:
    if not isinstance(values, list):
        return _esc(values)
    marked = set(row.get("positions") or [])
    cells = [f"[reverse]{v}[/]" if i in marked else str(v) for i, v in enumerate(values[:48])]
    return " ".join(cells) + (" …" if len(values) > 48 else "")


def _num(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "-" if x is None else str(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _cos(x: Any) -> str:
    """Cosine near 1 needs its digits: 0.99999 must not print as 1."""
    return f"{x:.6f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _yes_no(x: Any) -> str:
    return {True: "yes", False: "inherited", None: "-"}.get(x, str(x))


def _short_hash(h: Any) -> str:
    return str(h)[:12] if h else "-"


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def _esc(x: Any) -> str:
    from rich.markup import escape

    return escape("" if x is None else str(x))
