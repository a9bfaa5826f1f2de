"""Small, shared file helpers: atomic writes, hashing, JSON read with clear errors.

Every file parity writes goes through here so that an interrupted run never leaves
a half-written record, lock or snapshot behind.

Output paths: a folder where a file is asked for, a missing or unwritable parent, a
place the system refuses (``/proc/x``), a full disk: one-line :class:`ParityError`
naming the path, and nothing left behind.

Stale temporaries: a temporary sibling is named ``.NAME.<owner>.<random>.tmp`` (``.old``
for the old version being swapped out) where ``<owner>`` is ``HOST-BOOT-PID-START``:
hashes of the host name and of the boot id, the process id and the process's start
time. The next write to the same place removes the temporaries of owners that are dead
(same host, and another boot, or no such process, or a process started at another
time: a reused pid does not fool it) and reports each removal to the hooks added with
:func:`add_stale_hook` (the CLI prints one line); temporaries of live owners, of other
hosts (a shared file system) and without an owner are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
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


#: errors of the place written to, not of parity: reported as a ParityError (exit 2)
_FULL_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
_PLACE_ERRORS = (*_FULL_ERRORS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                 errno.ENAMETOOLONG, errno.EINVAL, errno.EXDEV, errno.EBUSY)
_NAME_BYTES = 120  # of the output's name kept in a temporary's name (file names stop at 255)
_log = logging.getLogger("parity")
_stale_hooks: list[Callable[[Path], None]] = []


def add_stale_hook(hook: Callable[[Path], None]) -> None:
    """Call ``hook(path)`` for each stale temporary removed (the CLI prints a line)."""
    if hook not in _stale_hooks:
        _stale_hooks.append(hook)


def remove_stale_hook(hook: Callable[[Path], None]) -> None:
    with contextlib.suppress(ValueError):
        _stale_hooks.remove(hook)


def _place_error(path: Path, exc: OSError, doing: str = "cannot write") -> ParityError:
    reason = exc.strerror or type(exc).__name__
    return ParityError(f"{path}: {doing} here ({reason})", fix="choose another output path, in a writable folder")


def _output_parent(path: Path, want_dir: bool) -> Path:
    """The existing folder ``path`` goes into; ParityError when it cannot be written there."""
    if not path.name or path.name in (".", ".."):
        raise ParityError(f"{path}: not a {'folder' if want_dir else 'file'} name", fix="choose another output path")
    parent = path.parent if str(path.parent) else Path(".")
    if not want_dir and path.is_dir():
        raise ParityError(f"{path}: is a folder, a file name is needed here",
                          fix=f"choose a file name, e.g. {path / 'out.json'}")
    if not parent.exists():
        raise ParityError(f"{parent}: output folder does not exist", fix="create it or choose another output path")
    if not parent.is_dir():
        raise ParityError(f"{parent}: is not a folder", fix="choose another output path")
    return parent


def _temp_prefix(path: Path) -> str:
    short = path.name.encode("utf-8")[:_NAME_BYTES].decode("utf-8", "ignore")
    return f".{short}."


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``."""
    path = Path(path)
    parent = _output_parent(path, want_dir=False)
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path) + _owner() + ".", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise _place_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _apply_default_mode(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _PLACE_ERRORS:
            raise _place_error(path, exc) from None
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
    A full disk or a refused place while writing inside becomes a ParityError naming
    ``final``.
    """
    final = Path(final)
    parent = _output_parent(final, want_dir=True)
    if final.exists() and not overwrite:
        if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
            final.rmdir()
        else:
            raise ParityError(f"{final}: already exists", fix="choose another output path or remove it first")
    remove_stale_temporaries(final)
    prefix = _temp_prefix(final) + _owner() + "."
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    except OSError as exc:
        raise _place_error(final, exc) from None
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRORS:  # a full disk while writing inside
            raise _place_error(final, exc) from None
        raise
    try:
        _apply_default_mode(tmp, 0o777)
        if final.exists() or final.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=parent))
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in _PLACE_ERRORS:
            raise _place_error(final, exc) from None
        raise


# ------------------------------------------------------------------ stale temporaries


@functools.lru_cache(maxsize=1)
def _host_and_boot() -> tuple[str, str]:
    host = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = hashlib.sha256(f.read().strip()).hexdigest()[:8]
    except OSError:
        boot = "0" * 8  # unknown: a reboot cannot be told
    return host, boot


def _start_time(pid: int) -> int:
    """The process's start time (clock ticks after boot), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


_owners: dict[int, str] = {}


def _owner() -> str:
    """This process as a temporary's owner: ``HOST-BOOT-PID-START``."""
    pid = os.getpid()
    if pid not in _owners:  # per pid: a forked child is another owner
        host, boot = _host_and_boot()
        _owners[pid] = f"{host}-{boot}-{pid}-{_start_time(pid)}"
    return _owners[pid]


def _owner_alive(owner: str) -> bool:
    """False only when the owner is surely dead; unknown owners count as alive."""
    parts = owner.split("-")
    if len(parts) != 4 or not (parts[2].isdigit() and parts[3].isdigit()):
        return True
    host, boot = _host_and_boot()
    if parts[0] != host:
        return True  # another machine sharing this folder: its processes cannot be seen
    if parts[1] != boot:
        return boot == "0" * 8 or parts[1] == "0" * 8  # written before this boot: dead
    pid, start = int(parts[2]), int(parts[3])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by another user
    now = _start_time(pid)
    return not (start and now and now != start)  # a reused pid started at another time


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries left beside ``target`` by dead parity processes; returns
    them (and tells the hooks). Never raises: cleaning up must not stop a write."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    prefix = _temp_prefix(target)
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for entry in entries:
        parts = entry.name[len(prefix):].split(".")
        if len(parts) != 3 or parts[2] not in ("tmp", "old") or _owner_alive(parts[0]):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
        _log.info("removed %s: a temporary left by a parity process that died", entry.path)
        for hook in list(_stale_hooks):
            hook(Path(entry.path))
    return removed


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


# ------------------------------------------------------------------ object storage (fsspec)
#
# Records and snapshots may live at URLs (``s3://bucket/golden``) read through fsspec, the
# ``parity[s3]`` extra. fsspec is imported inside these functions, never at module import;
# without it a URL is refused in one line naming the extra. Layers above ``records/``
# (env, target, bisection) read a record's manifest.json and env.json through here.

#: a URL scheme of two characters or more ("C:/x" is a Windows path); one slash after the
#: colon too, because ``Path("s3://b/k")`` reads ``s3:/b/k``
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
FIX_EXTRA = "pip install 'parity[s3]'"
#: what a remote failure is, by the name of its exception class (or a base class): fsspec's
#: backends (s3fs/botocore, gcsfs, adlfs, aiohttp) are not imported to be told apart
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError",
                   "ClientAuthenticationError", "CredentialRetrievalError", "RefreshError")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError",
                "ServerTimeoutError", "ConnectionError", "TimeoutError", "ServiceRequestError")
_REMOTE_MODULES = ("botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs", "fsspec", "aiohttp", "google", "azure")


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL of object storage (``s3://``, ``gs://``...), not a
    local path or ``file://`` (a path made from a URL, ``s3:/b/k``, counts too)."""
    match = _URL_SCHEME.match(os.fsdecode(location))
    return match is not None and match.group(1).lower() != "file"


def url_text(location: str | os.PathLike[str]) -> str:
    """``location`` as a URL, its ``//`` restored (``Path("s3://b/k")`` reads ``s3:/b/k``),
    without a trailing slash."""
    text = os.fsdecode(location)
    match = _URL_SCHEME.match(text)
    if match and not text.startswith("//", match.end() - 1):
        text = f"{text[:match.end()]}/{text[match.end():]}"
    return text.rstrip("/") if match and len(text) > match.end() + 1 else text


def url_shown(url: str) -> str:
    """``url`` for messages: user-info (``user:secret@``) masked."""
    return _USERINFO.sub(r"\1***@", url)


def url_fs(url: str, *, error: type[ParityError] = ParityError) -> tuple[Any, str]:
    """``(filesystem, path)`` of ``url`` through fsspec; ``error`` (exit 2) without the
    ``parity[s3]`` extra or without the backend of the URL's scheme."""
    shown = url_shown(url)
    try:
        import fsspec
    except ImportError:
        raise error(f"{shown}: object storage needs fsspec, which is not installed", fix=FIX_EXTRA) from None
    scheme = url.split(":", 1)[0].lower()
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        backend = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
                   "abfss": "adlfs", "adl": "adlfs", "oss": "ossfs"}.get(scheme)
        fix = FIX_EXTRA if backend in (None, "s3fs") else f"pip install {backend}"
        raise error(f"{shown}: no fsspec backend for {scheme}:// ({_first_line(exc)})", fix=fix) from None
    except ValueError as exc:
        raise error(f"{shown}: not a URL fsspec can open ({_first_line(exc)})",
                    fix="give a local folder or an s3://, gs://, az:// URL") from None
    return fs, str(path).rstrip("/")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return url_shown(text)[:200]


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_remote_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from storage (an OSError, or an exception of fsspec's backends)."""
    return isinstance(exc, OSError) or any(
        cls.__module__.split(".")[0] in _REMOTE_MODULES for cls in type(exc).__mro__)


def remote_error(url: str, exc: BaseException, doing: str = "cannot be read",
                 error: type[ParityError] = ParityError) -> ParityError:
    """One line for a storage failure at ``url``: no credentials, access denied, no such
    bucket, endpoint unreachable, or ``doing`` with the backend's reason; each with its fix."""
    shown, names, why = url_shown(url), _names(exc), _first_line(exc)
    if names & set(_NO_CREDENTIALS):
        return error(f"{shown}: no credentials for object storage ({why})",
                     fix="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (~/.aws), or run where an "
                         "instance role applies (gs://: GOOGLE_APPLICATION_CREDENTIALS; az://: AZURE_STORAGE_*)")
    if isinstance(exc, PermissionError):
        return error(f"{shown}: access denied ({why})",
                     fix="check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE...) and that they may read and "
                         "write this bucket")
    if isinstance(exc, FileNotFoundError) and "bucket" in why.lower():
        return error(f"{shown}: no such bucket ({why})",
                     fix="create the bucket first, or check its name (and AWS_ENDPOINT_URL for S3-compatible stores)")
    if names & set(_UNREACHABLE) or isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return error(f"{shown}: the storage endpoint cannot be reached ({why})",
                     fix="check the network and the endpoint (AWS_ENDPOINT_URL for S3-compatible stores)")
    return error(f"{shown}: {doing} ({why})", fix="check the URL, the credentials and the network")


@contextlib.contextmanager
def remote_errors(url: str, doing: str = "cannot be read", error: type[ParityError] = ParityError) -> Iterator[None]:
    """Turn a storage failure inside the block into :func:`remote_error` (exit 2, one line)."""
    try:
        yield
    except ParityError:
        raise
    except Exception as exc:
        if not is_remote_error(exc):
            raise
        raise remote_error(url, exc, doing, error) from None


def read_url_bytes(url: str, *, max_bytes: int | None = None, error: type[ParityError] = ParityError) -> bytes:
    """The object at ``url``; FileNotFoundError when there is none (the caller says what
    was expected), ``error`` for any other failure (credentials, bucket, network) or an
    object over ``max_bytes``."""
    fs, path = url_fs(url, error=error)
    with remote_errors(url, error=error):
        try:
            if max_bytes is not None and fs.size(path) > max_bytes:
                raise error(f"{url_shown(url)}: over {max_bytes >> 20} MiB, too large for what parity expects here",
                            fix="pass the URL of a parity record or snapshot")
            return bytes(fs.cat_file(path))
        except FileNotFoundError as exc:
            if "bucket" in str(exc).lower():
                raise
    raise FileNotFoundError(url)  # outside remote_errors: the caller says what was expected


def read_json_url(url: str, what: str, fix: str | None = None, *, max_bytes: int | None = None,
                  error: type[ParityError] = ParityError) -> Any:
    """:func:`read_json` for an object at ``url``: one-line ``error`` when it is missing,
    unreadable or not JSON."""
    try:
        raw = read_url_bytes(url, max_bytes=max_bytes, error=error)
    except FileNotFoundError:
        raise error(f"{url_shown(url)}: no such object", fix=fix or f"pass the URL of {what}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise error(f"{url_shown(url)}: not {what} (invalid JSON: {exc})", fix=fix) from None
