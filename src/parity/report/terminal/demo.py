"""The terminal report of ``parity demo`` (``DemoResult.to_json()``): one verdict per
scenario, why, and where its HTML report is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import esc, group, markup

if TYPE_CHECKING:
    from rich.console import RenderableType

_STYLE = {"PASS": "bold green", "FAIL": "bold red", "PASS-with-warnings": "bold yellow"}


def demo_report(doc: Mapping[str, Any]) -> RenderableType:
    """Each scenario's verdict (flagged when not the expected one), reason and report;
    long reasons and paths stay on one line each."""
    scenarios = doc.get("scenarios") or []
    lines = [f"\n[bold]parity demo[/bold]: {len(scenarios)} scenarios against the reference "
             f"recorded in {esc(doc.get('reference'))} ({fmt.seconds(doc.get('seconds'))})\n"]
    for s in scenarios:
        style = _STYLE.get(s.get("verdict"), "bold")
        flag = "" if s.get("as_expected") else f"  [bold red](expected {esc(s.get('expected'))})[/bold red]"
        lines.append(f"  [{style}]{esc(s.get('verdict')):<18}[/{style}] {esc(s.get('title'))}{flag}")
        if s.get("probable_cause"):
            lines.append(f"  {'':<18} probable cause: {esc(s.get('probable_cause'))}")
        else:
            lines.append(f"  {'':<18} {esc(s.get('reason'))}")
        lines.append(f"  {'':<18} [dim]report: {esc(s.get('report'))}[/dim]")
    lines.append(f"\nAll reports: {esc(doc.get('index'))}")
    if not doc.get("ok"):
        lines.append("[bold red]Some verdicts differ from what the demo expects: this environment behaves "
                     "unusually.[/bold red]")
    return group(markup(line, wrap=False) for line in lines)


def demo_progress(line: str) -> RenderableType:
    """One step of the demo, shown dimmed on stderr while it runs."""
    return markup(f"[dim]parity demo: {esc(line)}[/dim]", wrap=False)
