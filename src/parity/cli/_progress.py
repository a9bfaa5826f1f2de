"""The CLI side of :mod:`parity.progress`: a progress bar on stderr, only on a terminal.

``progress_for(as_json)`` is a context manager giving the callback a command passes to
the library. On a terminal (stderr is a TTY) and without ``--json``, events draw a rich
progress bar (task, done/total, bytes written, elapsed, ETA), removed when the command
ends. Notices (e.g. a full capture's size estimate) are printed as one line on stderr,
on a terminal or not; under ``--json`` nothing at all is written to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from parity._text import one_line
from parity.progress import ProgressEvent, ProgressFn


@contextlib.contextmanager
def progress_for(as_json: bool) -> Iterator[ProgressFn | None]:
    """The progress callback for one command run (None under ``--json``)."""
    if as_json:
        yield None
        return
    if not _stderr_is_terminal():
        yield _notices_only
        return
    with _Bar() as bar:
        yield bar.update


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _notices_only(event: ProgressEvent) -> None:
    if event.notice:
        sys.stderr.write(f"parity: {one_line(event.notice)}\n")
        sys.stderr.flush()


class _Bar:
    """A rich Progress on stderr with one row per task."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
            TextColumn("{task.fields[written]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True, highlight=False), transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: ProgressEvent) -> None:
        if event.notice:
            self.progress.console.print(f"parity: {one_line(event.notice)}", markup=False)
        written = ""
        if event.bytes_written is not None:
            from parity._text import format_size

            written = f"{format_size(event.bytes_written)} written"
        task = self.tasks.get(event.task)
        if task is None:
            task = self.tasks[event.task] = self.progress.add_task(
                event.task, total=event.total, unit=event.unit, written=written)
        self.progress.update(task, completed=event.done, total=event.total, unit=event.unit, written=written)
