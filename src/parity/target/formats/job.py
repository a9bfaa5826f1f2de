"""One export request, resolved (the eager model, its example tensors and the plan), what
a format's exporter reports back (findings), and the helpers exporters share."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.target.formats.model_io import ArtifactMeta, positional_module


@dataclass(frozen=True)
class Finding:
    """Something the export did that the user must know; ``where`` is ``file:line`` or None."""

    severity: str
    code: str
    message: str
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message, "where": self.where}


@dataclass
class ExportJob:
    """Everything a format module needs; ``dims`` is empty for a static export."""

    model: Any
    names: list[str]
    tensors: list[Any]
    call: str
    dims: dict[str, dict[str, str]]
    method: str
    meta: ArtifactMeta
    _wrapper: Any = field(default=None, repr=False)

    @property
    def wrapper(self) -> Any:
        """The model behind a fixed positional signature returning a flat tuple."""
        if self._wrapper is None:
            self._wrapper = positional_module(self.model, self.names, self.call)
        return self._wrapper


def short_path(filename: str) -> str:
    """A file name the user recognises: relative to the working folder, or from the package."""
    path = Path(filename)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        pass
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1:])
    return filename


def user_frame(exc: BaseException) -> str | None:
    """``file:line`` of the innermost traceback frame outside torch and parity, if any.

    That frame is the line of model code the exporter choked on.
    """
    hit = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if not _is_library(frame.filename):
            hit = f"{short_path(frame.filename)}:{frame.lineno}"
    return hit


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception message, bounded for a one-line report."""
    for line in str(exc).splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 3] + "..."
    return type(exc).__name__


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporters' stdout prints and log output below ERROR for the block.

    torch.export and the ONNX exporter print progress and log internal guesses ("Unable
    to find user code...", missing torchvision ops); a failure is reported by our own
    error instead, and ``--json`` must own stdout. Records still reach loggers (and
    :func:`guard_locations`' handler); only the printing handlers drop them.
    """
    drop = _BelowError()
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "torch" or name.startswith("torch.")]
    handlers = [h for lg in [*loggers, logging.getLogger()] for h in lg.handlers]
    for h in handlers:
        h.addFilter(drop)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for h in handlers:
            h.removeFilter(drop)


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def user_frame_of_stack() -> str | None:
    """``file:line`` of the innermost frame of the current stack outside torch and parity."""
    hit = None
    for frame in traceback.extract_stack():
        if not _is_library(frame.filename):
            hit = f"{short_path(frame.filename)}:{frame.lineno}"
    return hit


#: parity's own source folder (a user project may also be called "parity")
_PARITY_DIR = str(Path(__file__).resolve().parents[2]).replace(os.sep, "/") + "/"


def _is_library(filename: str) -> bool:
    name = filename.replace(os.sep, "/")
    if name.startswith(_PARITY_DIR) or name.startswith("<"):
        return True
    return any(part in name for part in ("/torch/", "/onnxscript/", "/onnx/", "/logging/", "/contextlib.py"))
