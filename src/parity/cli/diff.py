"""``parity diff A B``: every difference between two environments, highest risk first."""

from __future__ import annotations

from typing import Any, Optional

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, console, emit_json, json_option

_MAX_CELL = 48


@click.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--requirements", "requirements", type=click.Path(), metavar="FILE",
              help="Also show what this requirements file declared for each package, and whether it allowed the drift.")
@json_option
def command(a: str, b: str, requirements: Optional[str], as_json: bool) -> int:
    """Compare environments A and B (snapshot files, record directories, venv folders, or `current`).

    Exit 0 when identical, 1 when they differ, 2 when an input cannot be read.
    """
    from parity.env.diff import diff

    result = diff(a, b, requirements=requirements)
    if as_json:
        emit_json(result.to_json())
    else:
        render(result)
    return EXIT_OK if result.identical else EXIT_FINDING


def render(result: Any) -> None:
    """A rich table of the differences, then a one-line count."""
    out = console()
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    if result.identical:
        out.print(f"identical: no differences between {result.a_source or 'A'} and {result.b_source or 'B'}",
                  markup=False)
        return
    header = f"A = {result.a_source or 'A'}\nB = {result.b_source or 'B'}"
    if result.requirements:
        header += f"\ndeclared = {result.requirements}"
    out.print(header, markup=False)
    out.print(table(result))
    counts = result.counts()
    noun = "difference" if len(result.items) == 1 else "differences"
    out.print(f"{len(result.items)} {noun}: {counts['high']} high, {counts['medium']} medium, {counts['low']} low risk")


def table(result: Any) -> Any:
    """The rich Table of an EnvDiff (reusable by other reports)."""
    from rich.markup import escape
    from rich.table import Table

    from parity.env.diff import declared_note

    with_decl = result.requirements is not None
    t = Table(show_lines=False)
    # Risk never wraps; names fold only when very long; values and reasons wrap.
    t.add_column("risk", no_wrap=True)
    t.add_column("what", overflow="fold", min_width=14)
    t.add_column("A -> B", overflow="fold", min_width=12)
    t.add_column("why \\[stages]", min_width=14)
    if with_decl:
        t.add_column("declared", overflow="fold", min_width=12)
    styles = {"high": "bold red", "medium": "yellow", "low": "dim"}
    for item in result.items:
        row = [
            f"[{styles[item.risk]}]{item.risk}[/]", escape(f"{item.category} {item.name}"),
            _change(item), f"{escape(item.reason)} [dim]\\[{_stages(item.stages)}][/]",
        ]
        if with_decl:
            row.append(escape(declared_note(item)))
        t.add_row(*row)
    return t


def _stages(stages: tuple[str, ...]) -> str:
    short = {"preprocess": "pre", "model": "model", "postprocess": "post"}
    return ",".join(short.get(s, s) for s in stages) or "-"


def _change(item: Any) -> str:
    """``1.0 -> 2.0``, ``added 1.0``, ``removed 1.0``, ``variant 2.3+cu118 -> 2.3+cpu``."""
    from parity.env.diff import display

    a, b = _cut(display(item.a)), _cut(display(item.b))
    text = {"added": f"added {b}", "removed": f"removed {a}"}.get(item.change, f"{a} -> {b}")
    text = text.replace(" present", "")  # a CPU flag: "added", not "added present"
    if item.change == "variant":
        text = f"variant {text}"
    # Values come from package metadata and env vars: print them as text, never as markup.
    from rich.markup import escape

    return escape(text)


def _cut(text: str) -> str:
    # Huge values (compiler flags) are cut; --json has them whole.
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
