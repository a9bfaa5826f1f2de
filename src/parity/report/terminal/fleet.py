"""The terminal report of a fleet verify (``parity.fleet-verify/1`` JSON).

One table, one row per node: where it is, its verdict, the probable cause and the first
divergent layer; then the environment groups: the largest is the reference, every other
one says which nodes it holds and how their environment differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from parity.report.terminal._markup import esc, group, markup, plain
from parity.report.terminal.diff import display_value

if TYPE_CHECKING:
    from rich.console import RenderableType

_STYLE = {"PASS": "bold green", "FAIL": "bold red", "PASS-with-warnings": "bold yellow", "ERROR": "bold magenta"}
_ORDER = ("FAIL", "ERROR", "PASS-with-warnings", "PASS")
MAX_DIFFERENCES = 8


def fleet_report(result: Mapping[str, Any], html: object = None) -> RenderableType:
    """The report of ``result`` (a ``FleetResult.to_json()``); ``html``: where its HTML
    report was written, if it was."""
    nodes = [n for n in result.get("nodes") or [] if isinstance(n, Mapping)]
    parts: list[Any] = [_headline(result, nodes), _table(nodes)]
    parts += _groups(result.get("env_groups") or [], nodes)
    if html is not None:
        parts.append(plain(f"HTML report: {html}", style="dim"))
    return group(parts)


def _headline(result: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> RenderableType:
    verdict = str(result.get("verdict"))
    counts = result.get("counts") or {}
    tally = ", ".join(f"{counts[v]} {v}" for v in _ORDER if counts.get(v))
    style = _STYLE.get(verdict, "bold")
    return markup(f"[{style}]{esc(verdict)}[/] fleet verify of {esc(result.get('record'))} on {len(nodes)} "
                  f"node(s) of {esc(result.get('alive_nodes'))} alive at {esc(result.get('address'))}: {esc(tally)}")


def _table(nodes: Sequence[Mapping[str, Any]]) -> RenderableType:
    from rich.table import Table

    table = Table(show_lines=False, pad_edge=False)
    for title in ("node", "host / IP", "verdict", "probable cause", "first divergent layer", "env"):
        table.add_column(title, overflow="fold")
    for n in nodes:
        verdict = str(n.get("verdict"))
        cause = n.get("probable_cause") if isinstance(n.get("probable_cause"), Mapping) else None
        why = cause.get("summary") if cause else (n.get("reason") if verdict in ("ERROR", "FAIL") else "")
        layer = n.get("first_divergent_layer") or n.get("first_divergent_stage") or ""
        table.add_row(esc(str(n.get("node_id"))[:12]), esc(f"{n.get('hostname')} / {n.get('ip')}"),
                      markup(f"[{_STYLE.get(verdict, 'bold')}]{esc(verdict)}[/]"), esc(why), esc(layer),
                      esc(n.get("env_group") or "?"))
    return table


def _groups(groups: Sequence[Any], nodes: Sequence[Mapping[str, Any]]) -> list[Any]:
    out: list[Any] = []
    ok = [g for g in groups if isinstance(g, Mapping)]
    if len(ok) <= 1:
        if ok:
            out.append(markup(f"Environments: every node's is the same ({esc(ok[0].get('fingerprint'))})."))
        return out
    short = {str(n.get("node_id")): str(n.get("node_id"))[:12] for n in nodes}
    ref = ok[0]
    out.append(markup(f"Environments: {len(ok)} groups; {esc(ref.get('group'))} ({len(ref.get('nodes') or [])} "
                      f"node(s), fingerprint {esc(ref.get('fingerprint'))}) is the reference."))
    for g in ok[1:]:
        members = ", ".join(short.get(str(i), str(i)[:12]) for i in g.get("nodes") or [])
        out.append(markup(f"[bold]{esc(g.get('group'))}[/] ({esc(g.get('fingerprint'))}): {esc(members)} "
                          f"differ(s) from {esc(ref.get('group'))} in {esc(g.get('n_differences'))} item(s):"))
        for item in (g.get("differences") or [])[:MAX_DIFFERENCES]:
            out.append(plain(f"  {item.get('category')} {item.get('name')}: {display_value(item.get('a'))} -> "
                             f"{display_value(item.get('b'))} ({item.get('risk')} risk)"))
        hidden = int(g.get("n_differences") or 0) - min(len(g.get("differences") or []), MAX_DIFFERENCES)
        if hidden > 0:
            out.append(plain(f"  ... and {hidden} more (--json lists up to 20)", style="dim"))
    return out
