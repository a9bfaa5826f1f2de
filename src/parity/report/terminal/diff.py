"""The terminal report of an environment diff (``EnvDiff.to_json()``): a table ranked by
risk, then a one-line count."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity._text import one_line
from parity.report import _format as fmt
from parity.report.terminal._markup import esc, group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType

#: Longest value shown in a cell (compiler flags are cut; --json has them whole).
MAX_CELL = 48
_STYLES = {"high": "bold red", "medium": "yellow", "low": "dim"}
_SHORT_STAGES = {"preprocess": "pre", "model": "model", "postprocess": "post"}


def diff_report(result: Mapping[str, Any]) -> RenderableType:
    """Notes, the two sides, the table of differences and their count by risk."""
    parts: list[Any] = [plain(f"note: {note}") for note in result.get("notes") or ()]
    a, b = result.get("a") or "A", result.get("b") or "B"
    items = result.get("items") or []
    if not items:
        parts.append(plain(f"identical: no differences between {a} and {b}"))
        return group(parts)
    parts.append(plain(f"A = {a}"))
    parts.append(plain(f"B = {b}"))
    if result.get("requirements"):
        parts.append(plain(f"declared = {result['requirements']}"))
    parts.append(diff_table(result))
    counts = {risk: sum(1 for i in items if i.get("risk") == risk) for risk in ("high", "medium", "low")}
    noun = "difference" if len(items) == 1 else "differences"
    parts.append(plain(f"{len(items)} {noun}: {counts['high']} high, {counts['medium']} medium, "
                       f"{counts['low']} low risk"))
    return group(parts)


def diff_table(result: Mapping[str, Any]) -> Any:
    """The rich Table of the differences (risk, what, A -> B, why and stages, declared)."""
    from rich.table import Table

    with_decl = result.get("requirements") is not None
    t = Table(show_lines=False)
    # Risk never wraps; names fold only when very long; values and reasons wrap.
    t.add_column("risk", no_wrap=True)
    t.add_column("what", overflow="fold", min_width=14)
    t.add_column("A -> B", overflow="fold", min_width=12)
    t.add_column("why \\[stages]", min_width=14)
    if with_decl:
        t.add_column("declared", overflow="fold", min_width=12)
    for item in result.get("items") or ():
        risk = str(item.get("risk"))
        row = [
            f"[{_STYLES.get(risk, 'bold')}]{esc(risk)}[/]", esc(f"{item.get('category')} {item.get('name')}"),
            esc(change_text(item)), f"{esc(item.get('reason'))} [dim]\\[{esc(_stages(item.get('stages')))}][/]",
        ]
        if with_decl:
            row.append(esc(declared_note(item)))
        t.add_row(*row)
    return t


def change_text(item: Mapping[str, Any]) -> str:
    """``1.0 -> 2.0``, ``added 1.0``, ``removed 1.0``, ``variant 2.3+cu118 -> 2.3+cpu``."""
    a, b = fmt.cut(display_value(item.get("a")), MAX_CELL), fmt.cut(display_value(item.get("b")), MAX_CELL)
    change = item.get("change")
    text = {"added": f"added {b}", "removed": f"removed {a}"}.get(str(change), f"{a} -> {b}")
    text = text.replace(" present", "")  # a CPU flag: "added", not "added present"
    return f"variant {text}" if change == "variant" else text


def declared_note(item: Mapping[str, Any]) -> str:
    """What the requirements declared for a difference, and the verdict ("" without requirements)."""
    status = item.get("declared_status")
    if status is None:
        return ""
    if status == "absent":
        return "not declared (unpinned transitive)"
    if item.get("declared_allows") is None:
        return str(item.get("declared"))
    verdict = "allows this drift" if item.get("declared_allows") else "violated"
    return f"{item.get('declared')} ({verdict})"


def display_value(value: Any) -> str:
    """A snapshot value as one cell of text (None as a dash, a BLAS library as "mkl 2024.1
    (intel, 8 threads)"), control characters and newlines shown as escapes: values come
    from snapshots that travel between machines."""
    return one_line(_display(value))


def _display(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(_display(v) for v in value)
    if isinstance(value, dict):
        return _display_dict(value)
    return str(value)


def _display_dict(value: Mapping[str, Any]) -> str:
    if value.get("pretty_name"):  # an OS release
        return str(value["pretty_name"])
    if "internal_api" in value:  # a threadpoolctl library
        parts = [str(value.get("internal_api")), str(value.get("version") or "")]
        extra = [f"{value[k]}" for k in ("architecture", "threading_layer") if value.get(k)]
        threads = value.get("num_threads")
        return " ".join(p for p in parts if p) + f" ({', '.join([*extra, f'{threads} threads'])})"
    return json.dumps(value, sort_keys=True)


def _stages(stages: Any) -> str:
    return ",".join(_SHORT_STAGES.get(s, s) for s in stages or ()) or "-"
