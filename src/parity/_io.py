"""Small, shared file helpers: atomic writes, hashing, JSON read with clear errors.

Every file parity writes goes through here so that an interrupted run never leaves
a half-written record, lock or snapshot behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parity.errors import LfsPointerError, ParityError

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_default_mode(path: str | os.PathLike[str], base: int) -> None:
    # mkstemp/mkdtemp create 0600/0700 for safety while writing; the finished file
    # gets the mode an ordinary open() would have given it, so others can read it.
    os.chmod(path, base & ~_umask())


def cache_root() -> Path:
    """parity's per-user cache folder: ``$XDG_CACHE_HOME/parity``, else ``~/.cache/parity``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parity"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


#: The first line of every git-LFS pointer file (https://git-lfs.com/spec/v1).
_LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
_LFS_MAX_SIZE = 1024  # pointer files are ~130 bytes; the spec caps them at 1024


def is_lfs_pointer(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a small file that starts like a git-LFS pointer."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _LFS_MAX_SIZE:
            return False
        with open(path, "rb") as f:
            return f.read(len(_LFS_HEADER)) == _LFS_HEADER
    except OSError:
        return False


def check_not_lfs_pointer(path: str | os.PathLike[str]) -> None:
    """Raise :class:`~parity.errors.LfsPointerError` (exit 2) when ``path`` is an LFS pointer."""
    if is_lfs_pointer(path):
        raise LfsPointerError(path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Deterministic JSON: sorted keys, no NaN surprises for strict readers."""
    return json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False, default=_json_default) + (
        "\n" if indent is not None else ""
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_json"):
        return obj.to_json()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ParityError(f"{parent}: output folder does not exist", fix="create it or choose another -o path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _apply_default_mode(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, dumps_json(obj))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``final`` only on success.

    On any exception (including KeyboardInterrupt) the temporary directory is removed,
    so ``final`` is either absent, the old complete version, or the new complete one.
    """
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    if final.exists() and not overwrite:
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        else:
            raise ParityError(f"{final}: already exists", fix="choose another -o path or remove it first")
    if not parent.is_dir():
        raise ParityError(f"{parent}: output folder does not exist", fix="create it or choose another -o path")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        _apply_default_mode(tmp, 0o777)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=parent))
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: str | os.PathLike[str], what: str, fix: str | None = None) -> Any:
    """Read a JSON file, turning every failure into a one-line :class:`ParityError`.

    ``what`` names the expected content ("a snapshot", "a bench result") for the message.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ParityError(f"{path}: no such file", fix=fix or f"pass the path of {what}") from None
    except IsADirectoryError:
        raise ParityError(f"{path}: is a directory, expected {what}", fix=fix) from None
    except OSError as exc:
        raise ParityError(f"{path}: cannot be read ({exc.strerror})", fix=fix) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParityError(f"{path}: not {what} (invalid JSON: {exc})", fix=fix) from None
