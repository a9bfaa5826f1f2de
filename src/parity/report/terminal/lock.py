"""What ``parity lock`` says besides the lock itself (which is data, written as it is):
its warnings and, when written to a file, how much of the environment it locks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol

from parity.report.terminal._markup import group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType


class LockLike(Protocol):
    """What the report reads of a ``parity.env.lock.LockResult``."""

    @property
    def entries(self) -> Sequence[Any]: ...

    @property
    def locked(self) -> Sequence[Any]: ...

    @property
    def valid_for(self) -> str: ...

    @property
    def warnings(self) -> Sequence[str]: ...


def lock_report(result: LockLike, written_to: Optional[str] = None) -> RenderableType:
    """Warnings, then (when the lock went to the file ``written_to``) what it locks."""
    lines = [f"parity: warning: {w}" for w in result.warnings]
    if written_to is not None:
        lines.append(f"parity: wrote {written_to}: {len(result.locked)} of {len(result.entries)} distributions "
                     f"locked, valid for {result.valid_for}")
    return group(plain(line) for line in lines)
