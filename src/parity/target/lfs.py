"""Find the git-LFS pointer a failed ``build()`` tripped on.

A build function that loads a pointer in place of its weights fails deep inside a
loader (``SafetensorError: header too large``, ``UnpicklingError``...). When ``build()``
raises, parity looks for pointers among the files it could have read:

- the files Python opened while ``build()`` ran, seen through one ``sys.addaudithook``
  ``open`` recorder (installed once, on first use; audit hooks cannot be removed, so
  outside :func:`recording_opens` it returns at once);
- since Rust and C loaders (safetensors) open files without Python, a bounded scan of
  the target file's folder and the working folder: at most :data:`MAX_DEPTH` folders
  deep and :data:`MAX_ENTRIES` entries, small regular files only, skipping hidden
  folders, virtual environments, ``site-packages`` and ``__pycache__``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from parity._io import is_lfs_pointer

#: how many folders below a scanned root are looked into
MAX_DEPTH = 4
#: directory entries looked at per search, all roots together
MAX_ENTRIES = 5000
#: files recorded through the audit hook during one build()
MAX_OPENED = 20000
_POINTER_MAX_SIZE = 1024
_SKIP_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "node_modules"})

_opened: Optional[dict[str, None]] = None  # insertion-ordered set; None: not recording
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _opened is None or event != "open":
        return
    try:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)) and len(_opened) < MAX_OPENED:
            _opened[os.path.abspath(os.fsdecode(path))] = None
    except Exception:  # an audit hook must never break the code it watches
        pass


@contextmanager
def recording_opens() -> Iterator[list[str]]:
    """Record the paths Python opens inside the block; the list is filled on exit."""
    global _opened, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    previous, _opened = _opened, {}
    seen: list[str] = []
    try:
        yield seen
    finally:
        seen.extend(_opened or ())
        _opened = previous


def find_pointers(opened: Iterable[str], roots: Sequence[Path]) -> list[Path]:
    """LFS pointers among ``opened`` and in a bounded scan of ``roots``, first seen first."""
    found: dict[str, Path] = {}
    for path in opened:
        if path not in found and is_lfs_pointer(path):
            found[path] = Path(path)
    budget = [MAX_ENTRIES]
    for root in dict.fromkeys(os.path.abspath(r) for r in roots):
        for pointer in _scan(Path(root), 0, budget):
            found.setdefault(str(pointer), pointer)
    return list(found.values())


def _scan(folder: Path, depth: int, budget: list[int]) -> Iterator[Path]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for entry in entries:
        if budget[0] <= 0:
            return
        budget[0] -= 1
        try:
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and _worth_entering(entry):
                    subdirs.append(Path(entry.path))
                continue
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size <= _POINTER_MAX_SIZE and is_lfs_pointer(entry.path):
            yield Path(entry.path)
    for sub in subdirs:
        yield from _scan(sub, depth + 1, budget)


def _worth_entering(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
        return False
    return not os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))  # a virtual environment
