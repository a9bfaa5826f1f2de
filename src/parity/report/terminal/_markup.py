"""Small pieces every terminal report is built from (rich is imported when a report is built).

Text from a record, a model, a snapshot or a file goes through :func:`esc` (control
characters shown as ``\\xNN``, rich markup escaped) before it joins markup of our own.

Wrapping: the CLI prints reports soft-wrapped (``Console.print(..., soft_wrap=True)``),
so a :func:`plain` line (a command to copy, a path, a finding to grep) is never broken
by parity: on a terminal the terminal folds it, in a pipe or a CI log it stays one
line. Prose built with :func:`markup` wraps at the console's width, words longer than
the width are folded; tables always fit the width.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from parity._text import one_line

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text


def esc(x: Any) -> str:
    """Outside text made safe for markup: control characters as \\xNN, newlines as \\n,
    ``[`` escaped (ESC[2J, OSC-8 links and C1 CSI never reach the terminal)."""
    from rich.markup import escape

    return escape(one_line("" if x is None else x))


def markup(text: str, wrap: bool = True) -> Text:
    """Our own markup (``[bold]...[/]``, outside text already :func:`esc`-aped) as a Text;
    ``wrap=False``: one line per line of ``text``, like :func:`plain`."""
    from rich.text import Text

    out = Text.from_markup(text, emoji=False)
    if wrap:
        out.no_wrap, out.overflow = False, "fold"
    return out


def plain(text: str, style: str = "") -> Text:
    """Outside text as one line that is never wrapped, never read as markup."""
    from rich.text import Text

    return Text(one_line(text), style=style)


def group(parts: Iterable[RenderableType]) -> RenderableType:
    """The parts one below the other (one renderable for the caller to print)."""
    from rich.console import Group

    return Group(*parts)
