"""Self-contained HTML report of a verify/compare result (schema ``parity.verify/1``).

The page must open on an air-gapped production box, so everything is inline: the
style, our script, and plotly.js (its "basic" bundle, shipped in ``report/vendor/``:
a quarter of the full bundle's size and run time, and all a scatter plot needs).
A Content-Security-Policy meta tag forbids the browser to
fetch anything, so a forgotten URL fails loudly instead of phoning home.

Every piece of user content (layer keys, file paths, package names, messages) is
escaped with :func:`html.escape` when it lands in markup, and JSON embedded in a
``<script>`` has ``<``, ``>`` and ``&`` written as ``\\u003c``-style escapes, so
``</script>`` or ``<!--`` inside a layer name cannot end the script early.

The layer plot stays usable for thousands of layers: beyond :data:`MAX_PLOT_POINTS`
layers, consecutive layers are grouped and each group is drawn as its worst member
(max-preserving decimation), so a single bad layer is never averaged away. The page
states how many layers are drawn in ``data-layers-plotted`` on the plot element.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import ParityError
from parity.report import _format as fmt

#: Most points drawn per trace; above this, layers are grouped (worst member drawn).
MAX_PLOT_POINTS = 500
#: Values at or below this are drawn on the floor of the log axis ("exact match").
LOG_FLOOR = 1e-12
#: Rows of the environment diff shown before the rest is folded away.
ENV_ROWS_OPEN = 25

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
_STAGE_WHERE = {
    "inputs": "before the model runs: the model is fed different inputs",
    "preprocess": "before the model runs: the model is fed different inputs",
    "model": "in the model's outputs",
    "postprocess": "after the model, in post-processing (the model's own outputs match)",
}
_HEADLINES = {
    "PASS": "PASS: the model on B behaves like the reference on A.",
    "FAIL": "FAIL: the model on B does not behave like the reference on A.",
    "PASS-with-warnings": "PASS with warnings: the outputs match, but something deserves a look.",
}


def render_html(result_json: Mapping[str, Any]) -> str:
    """Render one verify/compare result (``VerifyResult.to_json()``) as an HTML page.

    Missing optional parts (no layers, no performance, no env diff) are stated on the
    page rather than failing.
    """
    if not isinstance(result_json, Mapping):
        raise ParityError("HTML report: the result is not a JSON object", fix="pass VerifyResult.to_json()")
    if result_json.get("schema") == "parity.fleet-verify/1":
        return _fleet_page(result_json)
    plotly_js = _plotly_js()
    r = result_json
    body = "\n".join(
        [
            _verdict_section(r),
            _layers_section(r),
            _stages_section(r),
            _runtime_section(r),
            _env_section(r),
            _assets_section(r),
            _predictions_section(r),
            _performance_section(r),
            _details_section(r),
        ]
    )
    scripts = (
        _script_json("parity-result", _json_safe(dict(r)))
        + _script_json("parity-plot-data", _plot_payload(_list(r.get("layers")), r))
        + f"<script>{_neutralise_script(plotly_js)}</script>\n<script>{_PLOT_JS}</script>\n"
    )
    title = f"parity report: {r.get('verdict', 'UNKNOWN')}"
    return _page(title, body, scripts)


@dataclass(frozen=True)
class IndexEntry:
    """One line of an index page: a named report with its verdict."""

    name: str
    title: str
    description: str
    verdict: str
    expected: str | None
    report: str  # path of the report, relative to the index page
    reason: str = ""


def render_index_html(title: str, intro: str, entries: Sequence[IndexEntry]) -> str:
    """An index page linking several reports (used by ``parity demo``). No plotly needed."""
    rows = []
    for e in entries:
        expected = "" if e.expected is None else _verdict_badge(e.expected)
        rows.append(
            f"<tr data-scenario='{_e(e.name)}'><td><a href='{_e(e.report)}'>{_e(e.title)}</a>"
            f"<div class='muted'>{_e(e.description)}</div></td>"
            f"<td>{_verdict_badge(e.verdict)}</td><td>{expected}</td><td>{_e(e.reason)}</td></tr>"
        )
    table = _table(["scenario", "verdict", "expected", "why"], rows)
    body = f"<header><h1>{_e(title)}</h1><p>{_e(intro)}</p></header><section>{table}</section>"
    return _page(title, body, "")


def _fleet_page(r: Mapping[str, Any]) -> str:
    """A fleet verify (``parity.fleet-verify/1``): one row per node, then the environment
    groups and how each differs from the reference. No plotly needed."""
    verdict = str(r.get("verdict") or "UNKNOWN")
    rows = []
    for n in _list(r.get("nodes")):
        cause = n.get("probable_cause") if isinstance(n.get("probable_cause"), Mapping) else {}
        rows.append(f"<tr data-node='{_e(n.get('node_id'))}'><td><code>{_e(n.get('node_id'))}</code></td>"
                    f"<td>{_e(n.get('hostname'))} / {_e(n.get('ip'))}</td><td>{_verdict_badge(str(n.get('verdict')))}"
                    f"</td><td>{_e(cause.get('summary') or n.get('reason') or '')}</td>"
                    f"<td><code>{_e(n.get('first_divergent_layer') or '')}</code></td><td>{_e(n.get('env_group'))}</td></tr>")
    groups = []
    for g in _list(r.get("env_groups")):
        diffs = "".join(f"<li>{_e(d.get('category'))} <code>{_e(d.get('name'))}</code>: {_e(d.get('a'))} &rarr; "
                        f"{_e(d.get('b'))} ({_e(d.get('risk'))} risk)</li>" for d in _list(g.get("differences")))
        what = "the reference" if g.get("reference") else f"differs in {_e(g.get('n_differences'))} item(s)"
        groups.append(f"<li><b>{_e(g.get('group'))}</b> ({_e(g.get('fingerprint'))}, {len(_list(g.get('nodes')))} "
                      f"node(s)): {what}<ul>{diffs}</ul></li>")
    body = (f"<header id='verdict' data-verdict='{_e(verdict)}'><h1 id='verdict-text'>Fleet verify: "
            f"{_verdict_badge(verdict)}</h1><p>{_e(r.get('record'))} on {len(_list(r.get('nodes')))} node(s) at "
            f"{_e(r.get('address'))}</p></header><section><h2>Nodes</h2>"
            + _table(["node", "host / IP", "verdict", "probable cause", "first divergent layer", "env"], rows)
            + f"</section><section><h2>Environments</h2><ul>{''.join(groups)}</ul></section>")
    return _page(f"parity fleet report: {verdict}", body, _script_json("parity-result", _json_safe(dict(r))))


# --------------------------------------------------------------------------- page


def _page(title: str, body: str, scripts: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n{scripts}</body></html>\n"
    )


PLOTLY_JS = "vendor/plotly-basic.min.js"


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    """plotly.js's basic bundle (scatter, bar, pie), shipped with parity: see vendor/README.txt."""
    return (Path(__file__).parent / PLOTLY_JS).read_text(encoding="utf-8")


def _neutralise_script(js: str) -> str:
    """Make a script body safe to inline: nothing in it may close the <script> element."""
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return js.replace("<!--", "<\\!--")


def _script_json(element_id: str, obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return f"<script type='application/json' id='{element_id}'>{text}</script>\n"


def _json_safe(obj: Any) -> Any:
    """Plain JSON with non-finite floats as strings (JSON.parse rejects NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


# ---------------------------------------------------------------------- verdict


def _verdict_section(r: Mapping[str, Any]) -> str:
    verdict = str(r.get("verdict") or "UNKNOWN")
    headline = _HEADLINES.get(verdict, f"{verdict}: parity could not reach a verdict.")
    reason = r.get("reason") or ""
    points = "".join(f"<li>{p}</li>" for p in _summary_points(r))
    points += "".join(f"<li class='warning'>Warning: {_e(w)}</li>" for w in _list(r.get("warnings")))
    points += "".join(f"<li class='muted'>{_e(n)}</li>" for n in _list(r.get("notes")))
    a, b = _mapping(r.get("a")), _mapping(r.get("b"))
    return (
        f"<header class='verdict {_verdict_class(verdict)}' id='verdict' data-verdict='{_e(verdict)}'>"
        f"<h1 id='verdict-text'>{_e(headline)}</h1><p class='reason'>{_e(reason)}</p>"
        f"<p class='muted'>A (reference): {_e(a.get('record') or a.get('target') or 'n/a')} · "
        f"B (checked): {_e(b.get('record') or b.get('target') or 'n/a')}</p></header>"
        f"<section id='summary'><h2>What parity found</h2><ul>{points}</ul></section>"
    )


def _summary_points(r: Mapping[str, Any]) -> list[str]:
    """Plain-language bullets, each already escaped, most decisive first."""
    pts: list[str] = []
    cause = _cause_point(_mapping(r.get("probable_cause")))
    if cause:
        pts.append(cause)
    pts.extend(f"API change: {_e(_mapping(x).get('message'))} (module <code>{_e(_mapping(x).get('module') or '<root>')}"
               "</code>)." for x in _list(r.get("api_changes"))[:5])
    stage = r.get("first_divergent_stage")
    if stage:
        pts.append(f"The first difference is at the <b>{_e(stage)}</b> stage, {_e(_STAGE_WHERE.get(stage, 'in its outputs'))}.")
    layer, intro = r.get("first_divergent_layer"), r.get("first_introducing_layer")
    if layer:
        pts.append(f"First layer out of tolerance: <code>{_e(layer)}</code>.")
    if intro:
        pts.append(f"Layer that <b>introduces</b> the error (earlier layers only pass it on): <code>{_e(intro)}</code>.")
    elif layer and stage in ("inputs", "preprocess"):
        pts.append("No layer introduces it: the layers only pass on the difference in their inputs.")
    elif layer and r.get("capture") not in (None, "full"):
        pts.append("Which layer introduces the error is not known (that needs a record made with --capture full).")
    pts.extend(_summary_context(r))
    return pts or ["No stage, layer, asset or environment difference was found."]


def _cause_point(cause: Mapping[str, Any]) -> str:
    """The probable cause as the first bullet: summary, confidence, evidence, what was checked."""
    if not cause:
        return ""
    evidence = "".join(f"<li>{_e(e)}</li>" for e in _list(cause.get("evidence")))
    fix = f"<li>Fix: {_e(cause.get('fix'))}</li>" if cause.get("fix") else ""
    checked = "; ".join(str(c) for c in _list(cause.get("checked")))
    checked_li = f"<li class='muted'>Checked: {_e(checked)}</li>" if checked else ""
    return (f"<span id='probable-cause' data-kind='{_e(cause.get('kind'))}'><b>Probable cause</b>: "
            f"{_e(cause.get('summary'))} <span class='muted'>(confidence: {_e(cause.get('confidence'))})</span></span>"
            f"<ul>{evidence}{fix}{checked_li}</ul>")


def _summary_context(r: Mapping[str, Any]) -> list[str]:
    pts: list[str] = []
    preds = _mapping(r.get("predictions"))
    if preds.get("argmax_agreement") is not None:
        pts.append(f"Predicted classes agree on {fmt.percent(preds['argmax_agreement'])} of inputs.")
    elif preds.get("cosine") is not None:
        pts.append(f"Output cosine similarity: {fmt.cosine(preds['cosine'])}.")
    findings = _list(r.get("runtime"))
    if findings:
        first = _mapping(findings[0])
        pts.append(f"{len(findings)} runtime finding(s), e.g. {_e(first.get('message', ''))}")
    items = _list(_mapping(r.get("env_diff")).get("items"))
    if items:
        high = sum(1 for i in items if _mapping(i).get("risk") == "high")
        top = _mapping(items[0])  # ranked by risk (EnvDiff's order)
        pts.append(
            f"{len(items)} environment difference(s), {high} high-risk; top: <code>{_e(top.get('name'))}</code> "
            f"{_e(_short(top.get('a')))} → {_e(_short(top.get('b')))}."
        )
    assets = _mapping(r.get("assets"))
    files = [f for f in _list(assets.get("files")) if _mapping(f).get("change") not in (None, "same", "unchanged")]
    params = _list(assets.get("params"))
    if files or params:
        pts.append(f"{len(files)} asset file(s) and {len(params)} weight tensor(s) differ.")
    return pts


def _verdict_class(verdict: str) -> str:
    return {"PASS": "pass", "FAIL": "fail", "PASS-with-warnings": "warn"}.get(verdict, "unknown")


def _verdict_badge(verdict: str) -> str:
    return f"<span class='badge {_verdict_class(verdict)}'>{_e(verdict)}</span>"


# ----------------------------------------------------------------------- layers


@dataclass
class _Point:
    index: int  # execution index of the drawn (worst) layer
    first: int  # first and last execution index of the group
    last: int
    layer: Mapping[str, Any]
    max_abs: float | None
    rel_l2: float | None
    diverged: bool


def _layers_section(r: Mapping[str, Any]) -> str:
    layers = _list(r.get("layers"))
    plotted = len(_decimate(layers))
    note = (
        f"{len(layers)} layers, grouped into {plotted} points (each point is the worst layer of its group)."
        if plotted < len(layers)
        else f"{len(layers)} layers in execution order."
    )
    if not layers:
        note = "No per-layer data: the record holds stage outputs only (record with --capture stats or full to localise a divergence)."
    return (
        "<section id='layers'><h2>Error per layer</h2>"
        f"<p class='muted'>{_e(note)} Log scale; hover a point for the layer key, module type, shape and metrics.</p>"
        f"<div id='layer-plot' data-layers-total='{len(layers)}' data-layers-plotted='{plotted}'></div>"
        f"{_divergent_layers_table(layers)}</section>"
    )


def _decimate(layers: Sequence[Any], limit: int = MAX_PLOT_POINTS) -> list[_Point]:
    """One point per layer, or per group of consecutive layers when there are too many."""
    size = max(1, math.ceil(len(layers) / limit))
    points = []
    for start in range(0, len(layers), size):
        group = [(i, _mapping(layers[i])) for i in range(start, min(start + size, len(layers)))]
        worst_i, worst = max(group, key=lambda il: _badness(il[1]))
        points.append(
            _Point(
                index=worst_i,
                first=group[0][0],
                last=group[-1][0],
                layer=worst,
                max_abs=_group_max(group, "max_abs"),
                rel_l2=_group_max(group, "rel_l2"),
                diverged=any(layer.get("status") == "diverged" for _, layer in group),
            )
        )
    return points


def _badness(layer: Mapping[str, Any]) -> float:
    """How far a layer is past its tolerance (max abs error / atol); -1 without metrics."""
    v = _metric(layer, "max_abs")
    if v is None:
        return -1.0
    atol = _finite(layer.get("atol")) or 0.0
    return v / atol if atol > 0 else v


def _group_max(group: Iterable[tuple[int, Mapping[str, Any]]], name: str) -> float | None:
    values = [v for _, layer in group if (v := _metric(layer, name)) is not None]
    return max(values) if values else None


def _metric(layer: Mapping[str, Any], name: str) -> float | None:
    value = _mapping(layer.get("metrics")).get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if not math.isnan(value) else math.inf
    return None


def _plot_payload(layers: Sequence[Any], r: Mapping[str, Any]) -> dict[str, Any]:
    points = _decimate(layers)
    return {
        "x": [p.index for p in points],
        "max_abs": [_log_y(p.max_abs) for p in points],
        "rel_l2": [_log_y(p.rel_l2) for p in points],
        "atol": [_log_y(_finite(p.layer.get("atol"))) for p in points],
        "noise": [_log_y(_finite(p.layer.get("noise_floor"))) for p in points],
        "diverged": [p.diverged for p in points],
        "hover": [_hover(p) for p in points],
        "marks": _marks(layers, r),
        "total": len(layers),
    }


def _log_y(value: float | None) -> float | None:
    """A value drawable on a log axis: exact zeros sit on the floor, inf is capped."""
    if value is None:
        return None
    if math.isinf(value):
        return 1e30
    return max(value, LOG_FLOOR)


def _hover(p: _Point) -> str:
    """Hover text of one point, escaped (plotly turns entities back into characters)."""
    layer = p.layer
    metrics = _mapping(layer.get("metrics"))
    lines = [
        f"<b>{_e(layer.get('key'))}</b>",
        f"#{p.index} · {_e(layer.get('type') or '?')} · shape {_e(_shape(layer.get('shape')))} · {_e(layer.get('dtype') or '')}",
        f"status: {_e(layer.get('status') or '?')}" + _introduced_note(layer),
    ]
    lines += [f"{_e(k)}: {_e(fmt.cosine(v) if k == 'cosine' else fmt.num(v))}" for k, v in metrics.items()]
    lines.append(f"atol {_e(fmt.num(layer.get('atol')))} · rtol {_e(fmt.num(layer.get('rtol')))}")
    if p.first != p.last:
        lines.append(f"worst of layers #{p.first}–#{p.last} ({p.last - p.first + 1} layers)")
    return "<br>".join(lines)


def _introduced_note(layer: Mapping[str, Any]) -> str:
    if layer.get("contains"):
        return f" (contains {_e(layer.get('contains'))}, which introduces the error)"
    introduced = layer.get("introduced")
    return " (introduces the error)" if introduced is True else " (inherited)" if introduced is False else ""


def _marks(layers: Sequence[Any], r: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Exact positions of the first divergent and first introducing layers."""
    index = {_mapping(layer).get("key"): i for i, layer in enumerate(layers)}
    marks = []
    for field, label in (("first_divergent_layer", "first divergent"), ("first_introducing_layer", "introduces the error")):
        key = r.get(field)
        if key in index:
            i = index[key]
            y = _log_y(_metric(_mapping(layers[i]), "max_abs"))
            marks.append({"x": i, "y": y, "label": label, "key": _e(key), "field": field})
    return marks


def _divergent_layers_table(layers: Sequence[Any], limit: int = 20) -> str:
    bad = [(i, _mapping(layer)) for i, layer in enumerate(layers) if _mapping(layer).get("status") != "match"]
    if not bad:
        return ""
    rows = [
        f"<tr class='{_e(layer.get('status'))}'><td>{i}</td><td><code>{_e(layer.get('key'))}</code></td>"
        f"<td>{_e(layer.get('type'))}</td><td>{_e(_shape(layer.get('shape')))}</td><td>{_e(layer.get('status'))}</td>"
        f"<td>{_e(fmt.num(_metric(layer, 'max_abs')))}</td><td>{_e(fmt.num(_metric(layer, 'rel_l2')))}</td>"
        f"<td>{_origin(layer)}</td></tr>"
        for i, layer in bad[:limit]
    ]
    # One count for the heading and "and N more": the rows of this table.
    more = f"<p class='muted'>… and {len(bad) - limit} more.</p>" if len(bad) > limit else ""
    head = ["#", "layer", "type", "shape", "status", "max abs", "rel L2", "introduces"]
    missing = sum(1 for _, layer in bad if layer.get("status") == "only_a")
    title = f"Layers out of tolerance ({len(bad)})" if not missing else \
        f"Layers out of tolerance or missing in B ({len(bad)}, {missing} missing)"
    return f"<h3>{title}</h3>{_table(head, rows)}{more}"


def _origin(layer: Mapping[str, Any]) -> str:
    """yes / no (inherited) / contains KEY (a module around the one that introduces it) / n/a."""
    if layer.get("contains"):
        return f"contains <code>{_e(layer.get('contains'))}</code>"
    value = layer.get("introduced")
    return "yes" if value is True else "no" if value is False else "n/a"


# ----------------------------------------------------------------------- stages


def _stages_section(r: Mapping[str, Any]) -> str:
    stages = _list(r.get("stages"))
    first = r.get("first_divergent_stage")
    if not stages:
        return "<section id='stages'><h2>Pipeline stages</h2><p class='muted'>No stage data.</p></section>"
    rows = []
    for s in map(_mapping, stages):
        m = _mapping(s.get("metrics"))
        cls = "first" if s.get("stage") == first else _e(s.get("status"))
        rows.append(
            f"<tr class='{cls}' data-stage='{_e(s.get('stage'))}'><td>{_e(s.get('stage'))}</td><td>{_e(s.get('status'))}</td>"
            f"<td>{_e(fmt.num(m.get('max_abs')))}</td><td>{_e(fmt.num(m.get('rel_l2')))}</td>"
            f"<td>{_e(fmt.cosine(m.get('cosine')))}</td><td>{_e(fmt.num(m.get('mismatch_frac')))}</td></tr>"
        )
    table = _table(["stage", "status", "max abs", "rel L2", "cosine", "mismatch"], rows)
    diffs = "".join(_stage_rows(s) for s in map(_mapping, stages) if _list(s.get("rows")))
    return f"<section id='stages'><h2>Pipeline stages</h2>{table}{diffs}</section>"


def _stage_rows(stage: Mapping[str, Any], limit: int = 20) -> str:
    """Differing rows of a stage (e.g. token ids), A and B side by side.

    A row is ``{"name", "row", "positions", "a", "b"}`` (compare/stages.py); without
    ``positions`` the differing elements are found by comparing A and B in place.
    """
    rows = _list(stage.get("rows"))
    out = []
    for n, row in enumerate(rows[:limit]):
        row = row if isinstance(row, Mapping) else {"a": row, "b": None}
        a, b = row.get("a"), row.get("b")
        diff = _differing_positions(a, b, row.get("positions"))
        out.append(f"<tr><td>{_e(_row_label(row, n))}</td><td>{_side(a, diff)}</td><td>{_side(b, diff)}</td></tr>")
    more = f"<p class='muted'>… and {len(rows) - limit} more.</p>" if len(rows) > limit else ""
    title = f"Differing rows at {_e(stage.get('stage'))} ({len(rows)})"
    return f"<h3>{title}</h3>{_table(['row', 'A (reference)', 'B (checked)'], out, cls='side-by-side')}{more}"


def _row_label(row: Mapping[str, Any], n: int) -> str:
    name, index = row.get("name") or row.get("input") or "", row.get("row", row.get("index", n))
    return f"{_short(name, 60)} row {index}".strip()


def _differing_positions(a: Any, b: Any, positions: Any) -> set[int]:
    if isinstance(positions, list):
        return {p for p in positions if isinstance(p, int)}
    la, lb = _list(a), _list(b)
    return {i for i in range(max(len(la), len(lb))) if i >= len(la) or i >= len(lb) or la[i] != lb[i]}


def _side(values: Any, diff: set[int]) -> str:
    """One side of a row; the elements at differing positions are highlighted."""
    if not isinstance(values, list):
        return f"<code>{_e(_short(values, 400))}</code>"
    cells = [f"<span class='tok{' diff' if i in diff else ''}'>{_e(_short(v, 40))}</span>" for i, v in enumerate(values[:256])]
    return "<code>" + " ".join(cells) + (" …" if len(values) > 256 else "") + "</code>"


# --------------------------------------------------------------- env and assets


def _runtime_section(r: Mapping[str, Any]) -> str:
    findings = [_mapping(f) for f in _list(r.get("runtime"))]
    if not findings:
        return "<section id='runtime'><h2>Runtime state</h2><p class='muted'>No runtime findings.</p></section>"
    rows = [
        f"<tr class='{_e(f.get('severity'))}'><td>{_e(f.get('severity'))}</td><td><code>{_e(f.get('code'))}</code></td>"
        f"<td>{_e(f.get('message'))}</td><td>{_e(_short(f.get('where'), 200))}</td></tr>"
        for f in findings
    ]
    return f"<section id='runtime'><h2>Runtime state</h2>{_table(['severity', 'code', 'finding', 'where'], rows)}</section>"


def _env_section(r: Mapping[str, Any]) -> str:
    diff = _mapping(r.get("env_diff"))
    items = _list(diff.get("items"))  # ranked by risk (EnvDiff's order)
    if not items:
        text = "A and B environments are identical." if diff.get("identical") else "No environment diff in this result."
        return f"<section id='env'><h2>Environment (ranked)</h2><p class='muted'>{_e(text)}</p></section>"
    head = ["risk", "category", "name", "A", "B", "change", "why it matters", "stages"]
    rows = [_env_row(_mapping(i)) for i in items]
    shown = _table(head, rows[:ENV_ROWS_OPEN])
    rest = ""
    if len(rows) > ENV_ROWS_OPEN:
        rest = f"<details><summary>{len(rows) - ENV_ROWS_OPEN} more</summary>{_table(head, rows[ENV_ROWS_OPEN:])}</details>"
    return f"<section id='env'><h2>Environment (ranked, {len(items)} differences)</h2>{shown}{rest}</section>"


def _env_row(i: Mapping[str, Any]) -> str:
    stages = ", ".join(str(s) for s in _list(i.get("stages")))
    return (
        f"<tr class='risk-{_e(i.get('risk'))}'><td>{_e(i.get('risk'))}</td><td>{_e(i.get('category'))}</td>"
        f"<td><code>{_e(i.get('name'))}</code></td><td>{_e(_short(i.get('a')))}</td><td>{_e(_short(i.get('b')))}</td>"
        f"<td>{_e(i.get('change'))}</td><td>{_e(i.get('reason'))}</td><td>{_e(stages)}</td></tr>"
    )


def _assets_section(r: Mapping[str, Any]) -> str:
    assets = _mapping(r.get("assets"))
    files = [_mapping(f) for f in _list(assets.get("files"))]
    params = [_mapping(p) for p in _list(assets.get("params"))]
    note = str(assets.get("note") or "weights not compared")
    unknown = (f"<p class='muted' id='weights-unknown'>{_e(note[:1].upper() + note[1:])}.</p>"
               if assets.get("weights_compared") is False else "")
    if not files and not params:
        what = "No asset file differences." if unknown else "No asset or weight differences."
        return f"<section id='assets'><h2>Assets and weights</h2><p class='muted'>{what}</p>{unknown}</section>"
    parts = ["<section id='assets'><h2>Assets and weights</h2>", unknown]
    if files:
        rows = [
            f"<tr><td><code>{_e(f.get('path'))}</code></td><td>{_e(f.get('change'))}</td>"
            f"<td>{_e(_short(f.get('a'), 16))}</td><td>{_e(_short(f.get('b'), 16))}</td></tr>"
            for f in files
        ]
        parts.append(_table(["file", "change", "A sha256", "B sha256"], rows))
    if params:
        rows = [
            f"<tr><td><code>{_e(p.get('name'))}</code></td><td>{_e(fmt.num(p.get('max_abs')))}</td>"
            f"<td>{_e(_short(p.get('a_hash'), 16))}</td><td>{_e(_short(p.get('b_hash'), 16))}</td></tr>"
            for p in params
        ]
        parts.append(_table(["weight", "max abs change", "A hash", "B hash"], rows))
    return "".join(parts) + "</section>"


# ------------------------------------------------- predictions, speed, details


def _predictions_section(r: Mapping[str, Any]) -> str:
    preds = r.get("predictions")
    if not preds:
        return ""
    return f"<section id='predictions'><h2>Final predictions</h2>{_generic(preds)}</section>"


def _performance_section(r: Mapping[str, Any]) -> str:
    perf = r.get("performance")
    if not perf:
        return "<section id='performance'><h2>Performance</h2><p class='muted'>No benchmark in this comparison (record with --bench to add one).</p></section>"
    perf = _mapping(perf)
    # baseline/current are whole bench results with environment snapshots: too long to show.
    rest = {k: v for k, v in perf.items() if k not in ("baseline", "current", "stages", "attribution", "warnings", "schema")}
    parts = [
        "<section id='performance'><h2>Performance</h2>",
        f"<p><b>{_e(perf.get('verdict', ''))}</b> {_e(perf.get('reason', ''))}</p>",
        _perf_stages(_list(perf.get("stages"))),
        _perf_suspects(_list(perf.get("attribution"))),
        "".join(f"<p class='warning'>Warning: {_e(w)}</p>" for w in _list(perf.get("warnings"))),
        f"<details><summary>Details</summary>{_generic(rest)}</details></section>",
    ]
    return "".join(parts)


def _perf_stages(stages: Sequence[Any]) -> str:
    if not stages:
        return ""
    rows = []
    for st in map(_mapping, stages):
        ci = _list(st.get("ci"))
        ci_text = fmt.ratio_range(ci[0], ci[1], sep="–") if len(ci) == 2 else fmt.MISSING
        cls = "diverged" if st.get("regression") else ""
        rows.append(
            f"<tr class='{cls}'><td>{_e(st.get('stage'))}</td><td>{_e(fmt.seconds(st.get('baseline_p50')))}</td>"
            f"<td>{_e(fmt.seconds(st.get('current_p50')))}</td><td>{_e(fmt.ratio(st.get('ratio')))}</td><td>{_e(ci_text)}</td>"
            f"<td>{_e(st.get('verdict'))}</td><td>{'noisy' if st.get('noisy') else ''}</td></tr>"
        )
    head = ["stage", "A p50", "B p50", "B/A", "95% CI of B/A", "verdict", ""]
    return _table(head, rows)


def _perf_suspects(items: Sequence[Any], limit: int = 10) -> str:
    if not items:
        return ""
    rows = [
        f"<tr class='risk-{_e(i.get('risk'))}'><td>{_e(i.get('risk'))}</td><td><code>{_e(i.get('name'))}</code></td>"
        f"<td>{_e(_short(i.get('a')))} → {_e(_short(i.get('b')))}</td>"
        f"<td>{_e(', '.join(str(s) for s in _list(i.get('touches_slower_stage'))))}</td></tr>"
        for i in map(_mapping, items[:limit])
    ]
    return "<h3>Environment differences to suspect</h3>" + _table(["risk", "name", "A → B", "touches slower stage"], rows)


def _details_section(r: Mapping[str, Any]) -> str:
    tol = r.get("tolerances") or {}
    only = {"only in A": r.get("only_a") or [], "only in B": r.get("only_b") or []}
    return (
        "<section id='details'><details><summary>Tolerances, unmatched layers and provenance</summary>"
        f"<h3>Tolerances</h3>{_generic(tol)}<h3>Unmatched layers</h3>{_generic(only)}"
        f"<h3>A and B</h3>{_generic({'A': r.get('a'), 'B': r.get('b'), 'schema': r.get('schema')})}"
        "<p class='muted'>The full result is embedded in this file as JSON (script#parity-result).</p>"
        "</details></section>"
    )


def _generic(obj: Any, depth: int = 0) -> str:
    """Any JSON value as escaped nested tables (for parts whose shape may grow)."""
    if isinstance(obj, Mapping):
        if not obj:
            return "<span class='muted'>none</span>"
        rows = [f"<tr><th>{_e(k)}</th><td>{_value(k, v, depth + 1)}</td></tr>" for k, v in obj.items()]
        return f"<table class='kv'>{''.join(rows)}</table>"
    if isinstance(obj, list):
        if not obj:
            return "<span class='muted'>none</span>"
        if depth > 3 or all(not isinstance(v, (Mapping, list)) for v in obj):
            return f"<code>{_e(_short(obj, 600))}</code>"
        return "<ol>" + "".join(f"<li>{_generic(v, depth + 1)}</li>" for v in obj[:200]) + "</ol>"
    return _e(fmt.num(obj))


# ----------------------------------------------------------------- small helpers


def _value(key: Any, value: Any, depth: int) -> str:
    """A value under ``key``: a cosine keeps the digits that tell 0.99999 from 1."""
    if key == "cosine" and _finite(value) is not None:
        return _e(fmt.cosine(value))
    return _generic(value, depth)


def _table(head: Sequence[str], rows: Sequence[str], cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _shape(shape: Any) -> str:
    return "×".join(str(s) for s in shape) if isinstance(shape, (list, tuple)) else str(shape or "?")


def _short(value: Any, limit: int = 60) -> str:
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(_json_safe(value)))
    return fmt.cut(text, limit)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header,section{max-width:1200px;margin:0 auto;padding:12px 24px}
section{background:#fff;margin-top:12px;border-radius:6px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
header.verdict{border-left:8px solid #888;background:#fff;margin-top:16px;border-radius:6px}
header.pass{border-color:#1a7f37}header.fail{border-color:#cf222e}header.warn{border-color:#bf8700}
header.pass h1{color:#1a7f37}header.fail h1{color:#cf222e}header.warn h1{color:#9a6700}
h1{font-size:22px;margin:6px 0}h2{font-size:17px;margin:6px 0 10px}h3{font-size:15px;margin:14px 0 6px}
.reason{font-size:16px}.muted{color:#57606a}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e8eb;vertical-align:top}
thead th{background:#f0f2f4}table.kv{width:auto}table.kv th{font-weight:600;background:none}
tr.first td{background:#ffebe9;font-weight:600}tr.diverged td{background:#fff5f5}
tr.risk-high td:first-child,tr.error td:first-child{color:#cf222e;font-weight:600}tr.risk-medium td:first-child,tr.warning td:first-child{color:#9a6700}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
li.warning{color:#9a6700}
.tok.diff{background:#ffd8d3;outline:1px solid #cf222e}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;background:#888}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}.badge.warn{background:#bf8700}
#layer-plot{width:100%;height:460px}
"""

# Draws the layer plot from #parity-plot-data, then states on the plot element how
# many points were drawn so tests and tools can check the page without parsing SVG.
_PLOT_JS = r"""
(function () {
  var el = document.getElementById('layer-plot');
  var d = JSON.parse(document.getElementById('parity-plot-data').textContent);
  if (!d.x.length) { el.textContent = 'No layers to plot.'; el.style.height = 'auto';
    el.setAttribute('data-rendered-points', '0'); document.body.setAttribute('data-plot-ready', '1'); return; }
  var colors = d.diverged.map(function (v) { return v ? '#cf222e' : '#0969da'; });
  var hover = '%{text}<extra></extra>';
  var traces = [
    {name: 'max abs error', x: d.x, y: d.max_abs, text: d.hover, hovertemplate: hover,
     mode: 'lines+markers', line: {color: '#0969da', width: 1}, marker: {color: colors, size: 6}},
    {name: 'relative L2 error', x: d.x, y: d.rel_l2, text: d.hover, hovertemplate: hover,
     mode: 'lines+markers', line: {color: '#8250df', width: 1}, marker: {size: 4}},
    {name: 'tolerance (atol)', x: d.x, y: d.atol, mode: 'lines', hoverinfo: 'skip',
     line: {color: '#1a7f37', dash: 'dash', width: 2, shape: 'hv'}}
  ];
  if (d.noise.some(function (v) { return v !== null; })) {
    traces.push({name: 'noise floor', x: d.x, y: d.noise, mode: 'lines', hoverinfo: 'skip',
                 line: {color: '#999', dash: 'dot', width: 1, shape: 'hv'}});
  }
  var shapes = [], notes = [];
  d.marks.forEach(function (m, i) {
    var color = m.field === 'first_introducing_layer' ? '#bf3989' : '#cf222e';
    shapes.push({type: 'line', x0: m.x, x1: m.x, yref: 'paper', y0: 0, y1: 1,
                 line: {color: color, width: 2, dash: 'dot'}});
    notes.push({x: m.x, yref: 'paper', y: 1 - 0.08 * i, text: m.label + ': ' + m.key, showarrow: false,
                xanchor: 'left', font: {color: color}, bgcolor: 'rgba(255,255,255,0.8)'});
  });
  var layout = {margin: {l: 60, r: 20, t: 30, b: 50}, hovermode: 'closest', shapes: shapes, annotations: notes,
                xaxis: {title: {text: 'layer (execution order)'}, rangemode: 'tozero'},
                yaxis: {type: 'log', title: {text: 'error'}, exponentformat: 'e'},
                legend: {orientation: 'h', y: -0.2}};
  Plotly.newPlot(el, traces, layout, {displaylogo: false, responsive: true}).then(function (gd) {
    el.setAttribute('data-rendered-points', String(gd.data[0].x.length));
    document.body.setAttribute('data-plot-ready-ms', performance.now().toFixed(1));
    document.body.setAttribute('data-plot-ready', '1');
  });
})();
"""
