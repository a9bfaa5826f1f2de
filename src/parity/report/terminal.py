"""Rich terminal rendering of a verify/compare result (``parity.verify/1`` JSON).

Verdict first, then the sections in the order a person investigates: environment,
assets and weights, runtime state, stages, layers, predictions, performance. Long
lists are cut to their first rows with a count of what is hidden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from parity._text import one_line

MAX_ROWS = 10
_STYLE = {"PASS": "bold green", "FAIL": "bold red", "PASS-with-warnings": "bold yellow"}


def render_verify(result: Mapping[str, Any], console: Any) -> None:
    """Print the report for ``result`` (a ``VerifyResult.to_json()``) on a rich Console.

    The probable cause, when there is one, is the first line: the finding that explains
    the others comes before the symptoms it explains.
    """
    _cause(result, console)
    _verdict(result, console)
    for section in (_env, _assets, _runtime, _api, _stages, _layers, _predictions, _performance, _notes):
        section(result, console)


def _cause(r: Mapping[str, Any], c: Any) -> None:
    cause = r.get("probable_cause")
    if not isinstance(cause, Mapping):
        return
    c.print(f"[bold]Probable cause:[/] {_esc(cause.get('summary'))} [dim](confidence: {_esc(cause.get('confidence'))})[/]")
    for line in (cause.get("evidence") or [])[:6]:
        c.print(f"  [dim]evidence:[/] {_esc(line)}")
    if cause.get("fix"):
        c.print(f"  [dim]fix:[/] {_esc(cause.get('fix'))}")
    checked = cause.get("checked") or []
    if checked:
        c.print(f"  [dim]checked: {_esc('; '.join(str(x) for x in checked))}[/]")


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
    if assets.get("weights_compared") is False:
        summary = (f"{len(files)} file(s) differ" if files else "files same as A") + "; weights not compared (" + (
            "B exposes none" if "B exposes" in str(assets.get("note")) else "record lists none") + ")"
    else:
        summary = "same as A" if not (files or params) else f"{len(files)} file(s), {len(params)} weight tensor(s) differ"
    _heading(c, "Assets and weights", summary)
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


def _api(r: Mapping[str, Any], c: Any) -> None:
    changes = [x for x in r.get("api_changes") or [] if isinstance(x, Mapping)]
    if not changes:
        return
    _heading(c, "API changes", f"{len(changes)} module(s) of B refuse the arguments A passed")
    for x in changes[:MAX_ROWS]:
        c.print(f"  [red]error[/] {_esc(x.get('message'))} [dim](module {_esc(x.get('module') or '<root>')})[/]")
    if len(changes) > MAX_ROWS:
        c.print(f"  [dim]… and {len(changes) - MAX_ROWS} more (see --json or --html)[/]")


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
            c.print(f"  {_esc(s.get('stage'))} {_esc(row.get('name'))}, batch {_esc(row.get('batch'))} row "
                    f"{_esc(row.get('row'))}, positions {_esc((row.get('positions') or [])[:10])}:\n"
                    f"    A {_tokens(row.get('a'), row)}\n    B {_tokens(row.get('b'), row)}")


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
    # The table lists the diverged layers the headline counts; "and N more" is the rest of them.
    refused = {str(a.get("key")) for a in r.get("api_changes") or [] if isinstance(a, Mapping)}
    _table(c, ["diverged layer", "type", "max abs", "rel L2", "origin"],
           [[x.get("key"), x.get("type"), _num(_metric(x, "max_abs")), _num(_metric(x, "rel_l2")),
             "API change" if x.get("key") in refused else _origin(x)] for x in bad], more="diverged layer(s)")
    for side, label in (("only_a", "only in A"), ("only_b", "only in B")):
        keys = r.get(side) or []
        if keys:
            more = f" … and {len(keys) - MAX_ROWS} more" if len(keys) > MAX_ROWS else ""
            c.print(f"  {label} ({len(keys)}): {_esc(', '.join(keys[:MAX_ROWS]))}{more}")


def _predictions(r: Mapping[str, Any], c: Any) -> None:
    p = r.get("predictions")
    if not p:
        return
    parts = [f"kind {_esc(p.get('kind'))}"]
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


def _table(c: Any, head: Sequence[str], rows: Sequence[Sequence[Any]], more: str = "") -> None:
    if not rows:
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for i, name in enumerate(head):
        # the first column holds layer keys and file paths (and "origin" a key): wrap them, never cut them
        table.add_column(name, overflow="fold" if i == 0 or name == "origin" else "ellipsis")
    for row in rows[:MAX_ROWS]:
        table.add_row(*(_esc(_cell(v)) for v in row))
    c.print(table)
    if len(rows) > MAX_ROWS:
        c.print(f"  [dim]… and {len(rows) - MAX_ROWS} more{' ' + more if more else ''} (see --json or --html)[/]")


def _metric_cells(m: Any, names: Sequence[str]) -> list[str]:
    m = m if isinstance(m, Mapping) else {}
    return [_num(m.get(n)) for n in names]


def _tokens(values: Any, row: Mapping[str, Any]) -> str:
    if not isinstance(values, list):
        return _esc(values)
    marked = set(row.get("positions") or [])
    cells = [f"[reverse]{_esc(v)}[/]" if i in marked else _esc(v) for i, v in enumerate(values[:48])]
    return " ".join(cells) + (" …" if len(values) > 48 else "")


def _num(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "-" if x is None else one_line(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _cos(x: Any) -> str:
    """Cosine near 1 needs its digits: 0.99999 must not print as 1."""
    return f"{x:.6f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _origin(layer: Mapping[str, Any]) -> str:
    """Whether a diverged layer introduces the error, inherits it, or contains the one that does."""
    if layer.get("contains"):
        # the key inside this module, relative to it: "contains intermediate.dense#0/out"
        module, inner = str(layer.get("module") or ""), str(layer["contains"])
        return f"contains {inner[len(module) + 1:] if module and inner.startswith(module + '.') else inner}"
    return {True: "introduces", False: "inherited", None: "-"}.get(layer.get("introduced"), str(layer.get("introduced")))


def _metric(layer: Mapping[str, Any], name: str) -> Any:
    m = layer.get("metrics")
    return m.get(name) if isinstance(m, Mapping) else None


def _short_hash(h: Any) -> str:
    return str(h)[:12] if h else "-"


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def _esc(x: Any) -> str:
    """Text from a record, a model or a file, made safe for the terminal: control characters
    (ESC[2J, OSC-8 links, C1 CSI) shown as \\xNN, newlines as \\n, rich markup escaped."""
    from rich.markup import escape

    return escape(one_line("" if x is None else x))
