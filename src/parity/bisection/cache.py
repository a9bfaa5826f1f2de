"""The bisect cache: trial environments kept for later trials and later bisects, within a
size limit, least recently used removed first.

Each entry is a folder under the cache dir (``overlay-*``, ``venv-*``, ``parity-self/*``)
with a marker file written last; the marker's mtime is the entry's last use (touched
whenever a trial reuses it) and, for trials, the marker records the entry's size.
Folders without a marker are builds that were interrupted (or are running now) and are
removed once they are an hour old.

The limit: ``--cache-max-size``, else ``$PARITY_BISECT_CACHE_MAX``, else the smaller of
10 GB and half of (free space + what the cache holds) on the cache's disk.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._text import format_size, size_of
from parity.errors import BisectError

ENV_MAX = "PARITY_BISECT_CACHE_MAX"
DEFAULT_MAX = 10 * 10**9
_MARKERS = (".parity-trial.json", ".parity-self.txt")
_STALE_S = 3600


def parse_size(text: str, flag: str = "--cache-max-size") -> int:
    """Bytes from ``10G``, ``500MB``, ``2GiB`` or a number of bytes (K/M/G/T: powers of
    1000, Ki/Mi/Gi/Ti: of 1024). ``0`` is allowed: keep nothing after a bisect."""
    size = size_of(text)
    if size is None:
        raise BisectError(f"{flag} {text}: not a size", fix="give a size such as 500M, 10G or 2GiB")
    return size


@dataclass
class Entry:
    """One cached folder. ``kind``: overlay, venv, parity (the running parity's wheel) or
    incomplete (no marker: interrupted, or being built now)."""

    path: Path
    kind: str
    size: int
    last_used: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.path.name, "path": str(self.path), "kind": self.kind, "bytes": self.size,
                "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_used))}


@dataclass
class CacheInfo:
    """What the cache holds and its limit (``limit_source`` says where the limit came from)."""

    path: Path
    limit: int
    limit_source: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(e.size for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "parity.bisect_cache/1", "path": str(self.path), "limit_bytes": self.limit,
                "limit_source": self.limit_source, "total_bytes": self.total, "n_entries": len(self.entries),
                "entries": [e.to_json() for e in self.entries]}


@dataclass
class PruneResult:
    """Entries removed by :func:`prune` and what the cache holds afterwards."""

    info: CacheInfo
    removed: list[Entry] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {**self.info.to_json(), "removed": [e.to_json() for e in self.removed], "freed_bytes": self.freed}


def limit(cache_dir: Path, flag_value: str | None = None, held: int | None = None) -> tuple[int, str]:
    """(bytes, where the limit came from). ``held``: what the cache holds (computed when None)."""
    if flag_value is not None:
        return parse_size(flag_value), f"--cache-max-size {flag_value}"
    if os.environ.get(ENV_MAX):
        return parse_size(os.environ[ENV_MAX], f"${ENV_MAX}"), f"${ENV_MAX}={os.environ[ENV_MAX]}"
    try:
        free = shutil.disk_usage(cache_dir if cache_dir.exists() else _existing_parent(cache_dir)).free
    except OSError:
        return DEFAULT_MAX, "the default"
    held = sum(e.size for e in entries(cache_dir)) if held is None else held
    value = min(DEFAULT_MAX, (free + held) // 2)
    return value, (f"the default: the smaller of {format_size(DEFAULT_MAX)} and half of the free space "
                   f"plus the cache ({format_size(free + held)})")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def entries(cache_dir: Path) -> list[Entry]:
    """Every entry of the cache, least recently used first."""
    if not cache_dir.is_dir():
        return []
    found = [_entry(p) for p in _folders(cache_dir)]
    return sorted(found, key=lambda e: (e.last_used, e.path.name))


def _folders(cache_dir: Path) -> Iterable[Path]:
    for child in cache_dir.iterdir():
        if child.is_symlink() or not child.is_dir():
            continue
        if child.name == "parity-self":
            yield from (p for p in child.iterdir() if p.is_dir() and not p.is_symlink())
        else:
            yield child


def _entry(path: Path) -> Entry:
    for name in _MARKERS:
        marker = path / name
        if marker.is_file():
            kind = "parity" if name == ".parity-self.txt" else _trial_kind(path)
            return Entry(path, kind, _recorded_size(marker) or du(path), marker.stat().st_mtime)
    return Entry(path, "incomplete", du(path), path.stat().st_mtime)


def _trial_kind(path: Path) -> str:
    return path.name.split("-", 1)[0] if path.name.startswith(("overlay-", "venv-")) else "trial"


def _recorded_size(marker: Path) -> int | None:
    if marker.suffix != ".json":
        return None
    try:
        size = json.loads(marker.read_text("utf-8")).get("size_bytes")
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) and size >= 0 else None


def du(path: Path) -> int:
    """Bytes on disk under ``path``; files hard-linked several times inside it count once."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


def info(cache_dir: Path, flag_value: str | None = None) -> CacheInfo:
    found = entries(cache_dir)
    value, source = limit(cache_dir, flag_value, sum(e.size for e in found))
    return CacheInfo(cache_dir, value, source, found)


def prune(cache_dir: Path, flag_value: str | None = None, *, everything: bool = False,
          keep: Iterable[Path] = ()) -> PruneResult:
    """Remove least recently used entries until the cache fits its limit (all of them with
    ``everything``). Entries in ``keep`` (in use now) and builds under way stay."""
    current = info(cache_dir, flag_value)
    kept = {Path(p).resolve() for p in keep}
    now, total, removed = time.time(), current.total, []
    for entry in list(current.entries):
        if entry.path.resolve() in kept:
            continue
        if entry.kind == "incomplete" and now - entry.last_used < _STALE_S:
            continue  # perhaps another bisect building it right now
        if not everything and total <= current.limit and entry.kind != "incomplete":
            continue
        if _remove(entry.path):
            removed.append(entry)
            current.entries.remove(entry)
            total -= entry.size
    return PruneResult(current, removed)


def _remove(path: Path) -> bool:
    """Rename aside first, so no reader ever sees a half-removed entry as complete."""
    aside = path.with_name(f".{path.name}.removing-{os.getpid()}")
    try:
        os.replace(path, aside)
    except OSError:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True
