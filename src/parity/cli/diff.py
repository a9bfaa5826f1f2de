"""``parity diff A B``: every difference between two environments, highest risk first."""

from __future__ import annotations

from typing import Any, Optional

import click

from parity.cli._common import EXIT_DIVERGENCE, EXIT_OK, console, emit_json, json_option

_MAX_CELL = 48


@click.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--requirements", "requirements", type=click.Path(), metavar="FILE",
              help="Also show what this requirements file declared for each package, and whether it allowed the drift.")
@json_option
def command(a: str, b: str, requirements: Optional[str], as_json: bool) -> int:
    """Compare environments A and B (snapshot files, record directories, or `current`).

    Exit 0 when identical, 1 when they differ, 2 when an input cannot be read.
    """
    from parity.env.diff import diff

    result = diff(a, b, requirements=requirements)
    if as_json:
        emit_json(result.to_json())
    else:
        render(result)
    return EXIT_OK if result.identical else EXIT_DIVERGENCE


def render(result: Any) -> None:
    """A rich table of the differences, then a one-line count."""
    out = console()
    for note in result.notes:
        out.print(f"note: {note}")
    if result.identical:
        out.print(f"identical: no differences between {result.a_source or 'A'} and {result.b_source or 'B'}")
        return
    out.print(table(result))
    counts = result.counts()
    out.print(f"{len(result.items)} differences: {counts['high']} high, {counts['medium']} medium, {counts['low']} low risk")


def table(result: Any) -> Any:
    """The rich Table of an EnvDiff (reusable by other reports)."""
    from rich.table import Table

    from parity.env.diff import declared_note, display

    with_decl = result.requirements is not None
    t = Table(title=f"{result.a_source or 'A'} -> {result.b_source or 'B'}", show_lines=False)
    for col in ("risk", "what", "A", "B", "change", "why", "stages"):
        t.add_column(col, overflow="fold")
    if with_decl:
        t.add_column(f"declared in {result.requirements}", overflow="fold")
    styles = {"high": "bold red", "medium": "yellow", "low": "dim"}
    for item in result.items:
        row = [
            f"[{styles[item.risk]}]{item.risk}[/]", f"{item.category} {item.name}",
            _cell(display(item.a)), _cell(display(item.b)), item.change, item.reason, ",".join(item.stages) or "-",
        ]
        if with_decl:
            row.append(declared_note(item))
        t.add_row(*row)
    return t


def _cell(text: str) -> str:
    # Rich markup in package metadata must print as text, and huge values (compiler flags) are cut.
    from rich.markup import escape

    return escape(text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…")
