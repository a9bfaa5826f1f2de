"""The terminal report of ``parity doctor`` (``DoctorReport.to_json()``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report.terminal._markup import group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType


def doctor_report(report: Mapping[str, Any]) -> RenderableType:
    """One line per finding (file:line, severity, code, message), its fix indented below,
    then the count by severity."""
    lines: list[str] = []
    for f in report.get("findings") or ():
        lines.append(f"{f.get('where')}: {f.get('severity')} {f.get('code')} {f.get('message')}")
        lines.append(f"    fix: {f.get('fix')}")
    counts = report.get("counts") or {}
    included = len(report.get("files") or ()) - 1
    scope = f"{report.get('path')}" + (f" and {included} included file(s)" if included > 0 else "")
    lines.append(f"{counts.get('error', 0)} error(s), {counts.get('warning', 0)} warning(s), "
                 f"{counts.get('info', 0)} info in {scope}")
    return group(plain(line) for line in lines)
