"""The terminal report of ``parity bisect`` (``BisectResult.to_json()``), of its trial
cache (``--cache-info``, ``--prune``), and the one-line summaries of a trial shown while
the bisect runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import esc, group, markup, plain

if TYPE_CHECKING:
    from rich.console import RenderableType

_GOOD_ENV = "(none: the good environment)"


def bisect_report(doc: Mapping[str, Any]) -> RenderableType:
    """Warnings, the status and its reason, culprits (or suspects), narrowed releases,
    every trial, and the shell line that reproduces the decisive trial."""
    from rich.table import Table

    parts: list[Any] = [markup(f"[yellow]warning:[/] {esc(w)}") for w in doc["warnings"]]
    parts.append(markup(f"[bold]{esc(doc['status'])}[/]: {esc(doc['reason'])}"))
    if doc["culprits"]:
        table = Table("culprit", "good", "bad", "change",
                      title=f"{len(doc['changes'])} changes, {doc['n_trials']} trials")
        for c in doc["culprits"]:
            table.add_row(esc(c["name"]), esc(c["good"] or "(absent)"), esc(c["bad"] or "(absent)"), esc(c["change"]))
        parts.append(table)
    elif doc["suspects"]:
        parts.append(plain("still suspected: " + ", ".join(s["name"] for s in doc["suspects"])))
    parts.extend(plain(_narrow_line(n)) for n in doc["narrowed"])
    if doc["trials"]:
        parts.append(_trials_table(doc["trials"]))
    if doc["reproduce"]:
        parts.append(plain(f"reproduce trial {doc['decisive_trial']}:"))
        parts.append(plain(doc["reproduce"]))
    return group(parts)


def trial_started(trial: Mapping[str, Any]) -> RenderableType:
    """What the spinner says while a trial builds and runs."""
    return plain(f"trial {trial['index']} ({trial['stage']}): bad side = {_short(trial['bad_side'])}")


def trial_done(trial: Mapping[str, Any]) -> RenderableType:
    """One line per finished trial: index, stage, mode, verdict, time, the bad side's changes."""
    verdict = trial.get("verdict") or "?"
    return plain(f"trial {trial['index']:>3} {trial['stage']:<6} {trial['mode']:<7} {verdict:<8} "
                 f"{fmt.seconds(trial['seconds']):>8}  bad side = {_short(trial['bad_side'])}")


def cache_report(doc: Mapping[str, Any]) -> RenderableType:
    """The trial cache (a ``CacheInfo.to_json()``), after what ``--prune`` removed when
    ``doc`` is a ``PruneResult.to_json()``."""
    from rich.table import Table

    parts: list[Any] = []
    if "removed" in doc:
        parts.append(plain(f"removed {len(doc['removed'])} entries, {fmt.size(doc['freed_bytes'])} freed"))
    if doc["entries"]:
        table = Table("entry", "kind", "size", "last used (UTC)", title="bisect trial cache, least recently used first")
        for entry in doc["entries"]:
            table.add_row(esc(entry["name"]), esc(entry["kind"]), fmt.size(entry["bytes"]), esc(entry["last_used"]))
        parts.append(table)
    parts.append(plain(f"{doc['path']}: {len(doc['entries'])} entries, {fmt.size(doc['total_bytes'])} "
                       f"(limit {fmt.size(doc['limit_bytes'])}, {doc['limit_source']})"))
    return group(parts)


def _short(names: Sequence[str], limit: int = 4) -> str:
    if not names:
        return _GOOD_ENV
    shown = ", ".join(names[:limit])
    return shown + (f" +{len(names) - limit} more" if len(names) > limit else "")


def _narrow_line(n: Mapping[str, Any]) -> str:
    if n["status"] in ("exact", "adjacent"):
        return f"{n['name']}: first bad release {n['first_bad']} (last good {n['last_good']})"
    if n["status"] == "range":
        return (f"{n['name']}: first bad release is {n['first_bad']} or one of the untestable "
                f"{', '.join(n['skipped'])} (last good {n['last_good']})")
    return f"{n['name']}: {n.get('reason')}"


def _trials_table(trials: Sequence[Mapping[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("#", "stage", "bad side", "mode", "verdict", "seconds")
    for t in trials:
        mode = t["mode"] + (f" ({t['why_venv']})" if t["why_venv"] else "") + (" cached" if t["cached"] else "")
        verdict = f"{t['verdict']}" + (f": {t['note']}" if t["note"] else "")
        taken = ", ".join(t["bad_side"]) or _GOOD_ENV
        table.add_row(str(t["index"]), esc(t["stage"]), esc(taken), esc(mode), esc(verdict), fmt.seconds(t["seconds"]))
    return table
