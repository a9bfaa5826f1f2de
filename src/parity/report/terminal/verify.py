"""The terminal report of a verify/compare result (``parity.verify/1`` JSON).

Verdict first, then the sections in the order a person investigates: environment,
assets and weights, runtime state, stages, layers, predictions, performance. Long
lists are cut to their first rows with a count of what is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import esc, group, markup, plain
from parity.report.terminal.diff import display_value

if TYPE_CHECKING:
    from rich.console import RenderableType

MAX_ROWS = 10
_STYLE = {"PASS": "bold green", "FAIL": "bold red", "PASS-with-warnings": "bold yellow"}

_Parts = list[Any]


def verify_report(result: Mapping[str, Any], html: object = None) -> RenderableType:
    """The report of ``result`` (a ``VerifyResult.to_json()``); ``html``: where its HTML
    report was written, if it was.

    The probable cause, when there is one, is the first line: the finding that explains
    the others comes before the symptoms it explains.
    """
    parts: _Parts = []
    for section in (_cause, _verdict, _env, _assets, _runtime, _api, _stages, _layers, _targeted, _predictions,
                    _performance, _notes):
        section(result, parts)
    if html is not None:
        parts.append(plain(f"HTML report: {html}", style="dim"))
    return group(parts)


def _cause(r: Mapping[str, Any], out: _Parts) -> None:
    cause = r.get("probable_cause")
    if not isinstance(cause, Mapping):
        return
    out.append(markup(f"[bold]Probable cause:[/] {esc(cause.get('summary'))} "
                      f"[dim](confidence: {esc(cause.get('confidence'))})[/]"))
    for line in (cause.get("evidence") or [])[:6]:
        out.append(markup(f"  [dim]evidence:[/] {esc(line)}"))
    if cause.get("fix"):
        out.append(markup(f"  [dim]fix:[/] {esc(cause.get('fix'))}"))
    checked = cause.get("checked") or []
    if checked:
        out.append(markup(f"  [dim]checked: {esc('; '.join(str(x) for x in checked))}[/]"))


def _verdict(r: Mapping[str, Any], out: _Parts) -> None:
    from rich.panel import Panel

    verdict = str(r.get("verdict"))
    a, b = r.get("a") or {}, r.get("b") or {}
    body = markup(f"[{_STYLE.get(verdict, 'bold')}]{esc(verdict)}[/]  {esc(r.get('reason'))}\n"
                  f"[dim]A: {esc(a.get('record'))}  B: {esc(b.get('record') or b.get('target'))}  "
                  f"capture: {esc(r.get('capture'))}[/]")
    out.append(Panel(body, title="parity verify", expand=False))
    for w in r.get("warnings") or []:
        out.append(markup(f"[yellow]warning:[/] {esc(w)}"))


def _env(r: Mapping[str, Any], out: _Parts) -> None:
    items = (r.get("env_diff") or {}).get("items") or []
    _heading(out, "Environment", "same as A" if not items else f"{len(items)} difference(s), ranked by risk")
    rows = [[i.get("risk"), i.get("category"), i.get("name"), display_value(i.get("a")), display_value(i.get("b")),
             i.get("reason")] for i in items]
    _table(out, ["risk", "category", "name", "A", "B", "why it matters"], rows)


def _assets(r: Mapping[str, Any], out: _Parts) -> None:
    assets = r.get("assets") or {}
    files, params = assets.get("files") or [], assets.get("params") or []
    if assets.get("weights_compared") is False:
        summary = (f"{len(files)} file(s) differ" if files else "files same as A") + "; weights not compared (" + (
            "B exposes none" if "B exposes" in str(assets.get("note")) else "record lists none") + ")"
    else:
        summary = "same as A" if not (files or params) else f"{len(files)} file(s), {len(params)} weight tensor(s) differ"
    _heading(out, "Assets and weights", summary)
    _table(out, ["file", "change", "A sha256", "B sha256"],
           [[f.get("path"), f.get("change"), _short_hash(f.get("a")), _short_hash(f.get("b"))] for f in files])
    _table(out, ["weight", "change", "A hash", "B hash"],
           [[p.get("name"), p.get("change"), _short_hash(p.get("a_hash")), _short_hash(p.get("b_hash"))]
            for p in params])


def _runtime(r: Mapping[str, Any], out: _Parts) -> None:
    found = r.get("runtime") or []
    _heading(out, "Runtime state", "same as A" if not found else f"{len(found)} finding(s)")
    colour = {"error": "red", "warning": "yellow"}
    for f in found[:MAX_ROWS]:
        sev = str(f.get("severity"))
        out.append(markup(f"  [{colour.get(sev, 'dim')}]{esc(sev)}[/] {esc(f.get('message'))}"))


def _api(r: Mapping[str, Any], out: _Parts) -> None:
    changes = [x for x in r.get("api_changes") or [] if isinstance(x, Mapping)]
    if not changes:
        return
    _heading(out, "API changes", f"{len(changes)} module(s) of B refuse the arguments A passed")
    for x in changes[:MAX_ROWS]:
        out.append(markup(f"  [red]error[/] {esc(x.get('message'))} [dim](module {esc(x.get('module') or '<root>')})[/]"))
    if len(changes) > MAX_ROWS:
        out.append(markup(f"  [dim]… and {len(changes) - MAX_ROWS} more (see --json or --html)[/]"))


def _stages(r: Mapping[str, Any], out: _Parts) -> None:
    stages = r.get("stages") or []
    if not stages:
        return
    first = r.get("first_divergent_stage")
    _heading(out, "Stages", f"first divergent: {first}" if first else "all match")
    _table(out, ["stage", "status", "max abs", "rel L2", "mismatch"],
           [[s.get("stage"), s.get("status"), *_metric_cells(s.get("metrics"), ("max_abs", "rel_l2", "mismatch_frac"))]
            for s in stages])
    for s in stages:
        if s.get("suspects"):
            out.append(markup(f"  can explain the {esc(s.get('stage'))} difference: {esc('; '.join(s['suspects'][:5]))}"))
        for row in (s.get("rows") or [])[:5]:
            out.append(markup(
                f"  {esc(s.get('stage'))} {esc(row.get('name'))}, batch {esc(row.get('batch'))} row "
                f"{esc(row.get('row'))}, positions {esc((row.get('positions') or [])[:10])}:\n"
                f"    A {_tokens(row.get('a'), row)}\n    B {_tokens(row.get('b'), row)}"))


def _layers(r: Mapping[str, Any], out: _Parts) -> None:
    layers = r.get("layers") or []
    if not layers:
        return
    bad = [x for x in layers if x.get("status") == "diverged"]
    first, intro = r.get("first_divergent_layer"), r.get("first_introducing_layer")
    summary = f"{len(layers)} compared, {len(bad)} diverged" + (f"; first divergent: {first}" if first else "")
    _heading(out, "Layers (A's execution order)", summary)
    row = next((x for x in layers if x.get("key") == first), None)
    if row and isinstance(row.get("metrics"), Mapping):
        m = row["metrics"]
        out.append(markup(
            f"  {esc(first)} ({esc(row.get('type'))}): max abs {_num(m.get('max_abs'))}, mean abs "
            f"{_num(m.get('mean_abs'))}, rel L2 {_num(m.get('rel_l2'))}, cosine {_num(m.get('cosine'), fmt.cosine)}, "
            f"mismatch {_num(m.get('mismatch_frac'))} (atol {_num(row.get('atol'))}, rtol {_num(row.get('rtol'))})"))
    if intro:
        out.append(markup(f"  first layer that [bold]introduces[/] the error: [bold]{esc(intro)}[/] "
                          "(later layers inherit it)"))
    # The table lists the diverged layers the headline counts; "and N more" is the rest of them.
    refused = {str(a.get("key")) for a in r.get("api_changes") or [] if isinstance(a, Mapping)}
    _table(out, ["diverged layer", "type", "max abs", "rel L2", "origin"],
           [[x.get("key"), x.get("type"), fmt.num(_metric(x, "max_abs")), fmt.num(_metric(x, "rel_l2")),
             "API change" if x.get("key") in refused else _origin(x)] for x in bad], more="diverged layer(s)")
    for side, label in (("only_a", "only in A"), ("only_b", "only in B")):
        keys = r.get(side) or []
        if keys:
            more = f" … and {len(keys) - MAX_ROWS} more" if len(keys) > MAX_ROWS else ""
            out.append(markup(f"  {label} ({len(keys)}): {esc(', '.join(keys[:MAX_ROWS]))}{more}"))


def _targeted(r: Mapping[str, Any], out: _Parts) -> None:
    """The targeted full record to make on machine A, as one whole command line."""
    t = r.get("targeted_capture")
    if not isinstance(t, Mapping) or not t.get("command"):
        return
    _heading(out, "Next step on machine A", str(t.get("reason") or ""))
    out.append(plain(f"  {t.get('command')}"))  # one line to copy, never wrapped
    out.append(markup("  [dim]then `parity verify` that record here: it names the layer that introduces the error[/]"))


def _predictions(r: Mapping[str, Any], out: _Parts) -> None:
    p = r.get("predictions")
    if not p:
        return
    parts = [f"kind {esc(p.get('kind'))}"]
    if p.get("argmax_agreement") is not None:
        parts.append(f"argmax agreement {_num(p['argmax_agreement'], fmt.percent)}, top-{esc(p.get('k'))} overlap "
                     f"{_num(p.get('topk_overlap', 0), fmt.percent)}")
    if p.get("cosine") is not None:
        parts.append(f"cosine {_num(p.get('cosine'), fmt.cosine)}")
    parts.append(f"max abs {_num(p.get('max_abs'))}, rel L2 {_num(p.get('rel_l2'))}")
    _heading(out, "Predictions", f"{p.get('stage')} output {p.get('output') or ''}".rstrip())
    out.append(markup("  " + "; ".join(parts)))


def _performance(r: Mapping[str, Any], out: _Parts) -> None:
    perf = r.get("performance")
    if not perf:
        return
    _heading(out, "Performance", str(perf.get("reason") or perf.get("verdict") or ""))
    rows = [[s.get("stage"), fmt.seconds(s.get("baseline_p50")), fmt.seconds(s.get("current_p50")), _ratio(s),
             s.get("verdict")] for s in perf.get("stages") or [] if isinstance(s, Mapping)]
    _table(out, ["stage", "A p50", "B p50", "B/A (95% CI)", "verdict"], rows)


def _ratio(stage: Mapping[str, Any]) -> str:
    ratio, ci = stage.get("ratio"), stage.get("ci") or []
    if not isinstance(ratio, (int, float)):
        return fmt.MISSING
    return fmt.ratio(ratio) + (f" ({fmt.ratio_range(ci[0], ci[1])})" if len(ci) == 2 else "")


def _notes(r: Mapping[str, Any], out: _Parts) -> None:
    for note in r.get("notes") or []:
        out.append(markup(f"[dim]note: {esc(note)}[/]"))


def _heading(out: _Parts, title: str, summary: str) -> None:
    out.append(markup(f"\n[bold]{title}[/]: {esc(summary)}"))


def _table(out: _Parts, head: Sequence[str], rows: Sequence[Sequence[Any]], more: str = "") -> None:
    if not rows:
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for i, name in enumerate(head):
        # the first column holds layer keys and file paths (and "origin" a key): wrap them, never cut them
        table.add_column(name, overflow="fold" if i == 0 or name == "origin" else "ellipsis")
    for row in rows[:MAX_ROWS]:
        table.add_row(*(esc(fmt.MISSING if v is None else v) for v in row))
    out.append(table)
    if len(rows) > MAX_ROWS:
        out.append(markup(f"  [dim]… and {len(rows) - MAX_ROWS} more{' ' + more if more else ''} (see --json or --html)[/]"))


def _num(x: Any, how: Any = fmt.num) -> str:
    """A number formatted for markup (a non-number from a record is escaped)."""
    return esc(how(x))


def _metric_cells(m: Any, names: Sequence[str]) -> list[str]:
    m = m if isinstance(m, Mapping) else {}
    return [fmt.num(m.get(n)) for n in names]


def _tokens(values: Any, row: Mapping[str, Any]) -> str:
    if not isinstance(values, list):
        return esc(values)
    marked = set(row.get("positions") or [])
    cells = [f"[reverse]{esc(v)}[/]" if i in marked else esc(v) for i, v in enumerate(values[:48])]
    return " ".join(cells) + (" …" if len(values) > 48 else "")


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
