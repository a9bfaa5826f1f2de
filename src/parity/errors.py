"""The one base for user errors, kept apart from bugs.

A :class:`ParityError` is something the user can fix (a missing file, a bad flag,
a tampered record). The CLI prints it as one line and exits 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class ParityError(Exception):
    """A user error: says what is wrong and, in ``fix``, how to put it right."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message} (fix: {self.fix})"
        return self.message


class SnapshotError(ParityError):
    """A snapshot file or interpreter could not be read."""


class RequirementsError(ParityError):
    """A requirements file could not be read (missing include, cycle, encoding)."""


class TargetError(ParityError):
    """A TARGET could not be loaded or run."""


class InputsError(ParityError):
    """An ``--inputs`` file could not be read."""


class RecordError(ParityError):
    """A record directory is missing, tampered, truncated or from a future format."""


class BenchError(ParityError):
    """A benchmark could not be run or compared."""


class ExportError(ParityError):
    """A model could not be exported in the asked format."""


class BisectError(ParityError):
    """A bisect could not be set up (bad snapshots, oracle not found)."""


#: The exit codes of every command (DESIGN.md): scripts and ``bisect`` read 1 as
#: "the model diverged", so parity's own bugs never exit 1.
EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2
EXIT_BUG = 3


class LfsPointerError(ParityError):
    """A file is a git-LFS pointer, not the file it stands for."""

    def __init__(self, path: object) -> None:
        super().__init__(f"{path} is a git-LFS pointer, not the file", fix="run `git lfs pull`")
        self.path = path
