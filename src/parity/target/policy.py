"""Records never choose code: which recorded TARGET parity may run without being told.

A record (or a bench baseline) travels between machines and teams; its ``target`` is
data, not an instruction. ``parity verify DIR`` and ``parity bisect --oracle verify:DIR``
without a TARGET run the recorded one only when it is a relative ``file.py[:function]``
that resolves (symlinks followed) inside the current working directory and outside
the record. Anything else (a module such as ``pkg.mod:build`` or ``this:build``, an
absolute path, ``..``, a file inside the record, an exported artifact, which for
``.pt``/``.pt2`` unpickles and so is code too) needs TARGET on the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath

from parity._io import is_url
from parity._text import one_line
from parity.errors import TargetError
from parity.target.formats import suffixes as artifact_suffixes

#: model files refused like artifacts, besides every artifact format's suffixes
_WEIGHT_FILES = (".safetensors", ".bin", ".pkl", ".pickle")


@dataclass(frozen=True)
class RecordedTarget:
    """A recorded target parity may run: ``spec`` as recorded, ``file`` what it runs."""

    spec: str
    file: Path

    def describe(self) -> str:
        """One line for stderr: which file runs."""
        return f"parity: running the recorded target {one_line(self.spec)} ({one_line(self.file)})"


def recorded_target(spec: object, where: str | os.PathLike[str], record_dir: str | os.PathLike[str] | None,
                    *, usage: str = "parity verify DIR TARGET", cwd: str | os.PathLike[str] | None = None,
                    ) -> RecordedTarget:
    """The recorded ``spec`` when it may run here, else :class:`TargetError` (exit 2) naming it.

    ``where``: the file the spec came from (for the message); ``record_dir``: the record
    it must stay out of (None for a lone bench file); ``usage``: how to pass TARGET.
    """
    fix = f"pass TARGET on the command line: {usage}"
    if not isinstance(spec, str) or not spec.strip():
        raise TargetError(f"{where}: no target recorded", fix=fix)
    refused = _why_refused(spec, Path(cwd or os.getcwd()), record_dir)
    if isinstance(refused, str):
        raise TargetError(f"{where}: the recorded target {one_line(spec)!r} is {refused}; a record never "
                          "chooses the code parity runs", fix=fix)
    return RecordedTarget(spec, refused)


def _why_refused(spec: str, cwd: Path, record_dir: str | os.PathLike[str] | None) -> str | Path:
    """Why ``spec`` may not run (a phrase), or the file it runs."""
    file_part, colon, func = spec.rpartition(":")
    if not colon:
        file_part, func = spec, "build"
    if PurePath(file_part).suffix.lower() in (*artifact_suffixes(), *_WEIGHT_FILES):
        return "an exported artifact (loading .pt/.pt2 unpickles: it is code)"
    if not file_part.endswith(".py"):
        return "a module or folder, not a .py file in this folder"
    if not all(part.isidentifier() for part in func.split(".")):
        return f"not file.py:function ({one_line(func)!r} is not a function name)"
    path = PurePath(file_part)
    if path.is_absolute() or file_part.startswith("~"):
        return "an absolute path"
    if ".." in path.parts:
        return "a path that leaves this folder ('..')"
    here = cwd.resolve()
    real = (here / path).resolve()
    if not real.is_relative_to(here):
        return f"outside this folder ({here})"
    if record_dir is not None and not is_url(record_dir) and real.is_relative_to(Path(record_dir).resolve()):
        return "a file inside the record"
    if not real.is_file():
        return f"not a file in this folder ({one_line(file_part)} does not exist here)"
    return real


def target_of_record(record_dir: str | os.PathLike[str], *, usage: str = "parity verify DIR TARGET",
                     cwd: str | os.PathLike[str] | None = None) -> RecordedTarget:
    """:func:`recorded_target` for the ``target`` in ``record_dir/manifest.json`` (a folder,
    or a URL of object storage read through :func:`parity._io.read_json_url`)."""
    from parity._io import read_json, read_json_url, url_shown, url_text

    fix = "pass a directory written by `parity record`"
    if is_url(record_dir):
        url = f"{url_text(record_dir)}/manifest.json"
        manifest = read_json_url(url, "a record manifest", fix=fix, error=TargetError)
        manifest_where: str | Path = url_shown(url)
    else:
        manifest_where = Path(record_dir) / "manifest.json"
        manifest = read_json(manifest_where, "a record manifest", fix=fix)
    spec = manifest.get("target") if isinstance(manifest, dict) else None
    return recorded_target(spec, manifest_where, record_dir, usage=usage, cwd=cwd)
