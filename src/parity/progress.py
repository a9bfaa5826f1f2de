"""Progress of long work (record, verify, bench), reported to an optional callback.

The library never draws anything: functions that run long take ``progress=`` (a
:data:`ProgressFn`) and call it with :class:`ProgressEvent` values as work gets done.
The CLI turns them into a progress bar on stderr when stderr is a terminal (and not
under ``--json``), and prints notices such as the size estimate of a full capture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a task.

    ``task``: "record", "calibrate", "verify", "bench"... ``done`` of ``total`` ``unit``
    (``total`` None when unknown, e.g. a benchmark that runs for a minimum time);
    ``bytes_written``: what the task has written so far (None when it writes nothing);
    ``notice``: a one-line message meant to be shown once (e.g. a size estimate).
    """

    task: str
    done: int
    total: int | None
    unit: str
    bytes_written: int | None = None
    notice: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "done": self.done, "total": self.total, "unit": self.unit,
                "bytes_written": self.bytes_written, "notice": self.notice}


ProgressFn = Callable[[ProgressEvent], None]


def report(progress: ProgressFn | None, event: ProgressEvent) -> None:
    """Call ``progress`` with ``event`` when there is a callback."""
    if progress is not None:
        progress(event)


def relabel(progress: ProgressFn | None, task: str) -> ProgressFn | None:
    """``progress`` with every event's task renamed (verify reports its B record as "verify")."""
    if progress is None:
        return None
    target = progress

    def relabelled(event: ProgressEvent) -> None:
        target(replace(event, task=task))

    return relabelled
