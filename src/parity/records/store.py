"""Where records live: the record store, the one way parity reads and writes records.

A record is a set of *members*, files named by plain relative POSIX paths
(``layers.json``, ``activations/00000.safetensors``), plus ``manifest.json``, which lists
every other member with its size and sha256 and is written last. What the members mean
is :mod:`parity.records.format`'s business; this module only stores them:

- :class:`RecordStore`, one per kind of place: :meth:`~RecordStore.open_reader` opens a
  committed record (:class:`RecordReader`: ``list``, ``size``, ``open``, ``read_bytes``,
  ``sha256``, ``verify`` of the listed sizes and hashes), :meth:`~RecordStore.create`
  starts a new one (:class:`RecordWriter`, a context manager);
- :func:`store_for` picks the store from the location: a local path (or ``file://``),
  or a URL whose scheme a store was registered for with :func:`register_store`.

A writer streams members (:meth:`RecordWriter.open`, ``write_bytes``, ``write_json``)
or lets the shard writer write them with random access in a local spool folder
(:meth:`RecordWriter.spool`, each finished file handed over with
:meth:`RecordWriter.spooled`: the O_DIRECT fast path of :mod:`parity.records.writer`).
:meth:`RecordWriter.commit` writes the manifest last and makes the record visible at
once; leaving the ``with`` block by an exception (or without commit) aborts: nothing is
visible, and an older record at the same place is untouched.

:class:`LocalStore`: a record is a folder, written into a temporary sibling and renamed
into place on commit (:func:`parity._io.atomic_dir`). Object storage (``s3://``,
``gs://``, ``az://``... through fsspec, the ``parity[s3]`` extra) is
:class:`parity.records.remote.FsspecStore`, registered for :data:`OBJECT_SCHEMES` by
``parity.records`` (fsspec itself is imported on first use); another backend subclasses the three classes, implementing their
abstract methods, and registers its schemes with :func:`register_store`; nothing else
in parity changes (docs/architecture.md, "Record store").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

from parity._io import atomic_dir, atomic_write_bytes, dumps_json, is_lfs_pointer, sha256_file
from parity.errors import LfsPointerError, RecordError

MANIFEST = "manifest.json"
#: schemes served by the object storage store (:mod:`parity.records.remote`, fsspec);
#: ``memory://`` too (fsspec's in-process file system, for tests)
OBJECT_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2", "b2", "swift", "webdav",
                  "http", "https", "hf")
_FIX_COPY = "copy the record again from its source, or record again"
_LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
_LFS_MAX_SIZE = 1024
_CHUNK = 1 << 20
#: a URL scheme of two characters or more ("C:/x" is a Windows path); one slash after the
#: colon too, because ``Path("s3://b/k")`` reads ``s3:/b/k``
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")

#: member info as the manifest lists it
FileInfo = dict[str, Any]


def check_member_name(name: str) -> bool:
    """Whether ``name`` is a plain relative path inside a record (no ``..``, ``.``, empty
    part, leading slash or NUL)."""
    return bool(name) and not name.startswith("/") and "\0" not in name and "\\" not in name and all(
        part not in ("", ".", "..") for part in name.split("/"))


class RecordReader(ABC):
    """Read access to one committed record. ``location`` is what the user gave (messages
    and results name it); :meth:`where` names one member."""

    def __init__(self, location: str) -> None:
        self.location = location

    def where(self, name: str = "") -> str:
        """A member's name for messages: ``location/name``."""
        return f"{self.location.rstrip('/')}/{name}" if name else self.location

    @abstractmethod
    def list(self) -> list[str]:
        """Every member, ``manifest.json`` included. Refuses (RecordError) anything a
        record must not hold, such as a symbolic link or a special file."""

    @abstractmethod
    def size(self, name: str) -> int:
        """A member's size in bytes (OSError when it cannot be read)."""

    @abstractmethod
    def open(self, name: str) -> IO[bytes]:
        """A member as a readable, seekable binary file (OSError when it cannot be read)."""

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        with self.open(name) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def is_lfs_pointer(self, name: str) -> bool:
        """Whether the member is a git-LFS pointer in place of the file."""
        if self.size(name) > _LFS_MAX_SIZE:
            return False
        with self.open(name) as f:
            return f.read(len(_LFS_HEADER)) == _LFS_HEADER

    def local_path(self, name: str) -> Path | None:
        """A local file holding the member (safetensors maps it), or None: read it."""
        return None

    def verify(self, files: Mapping[str, Mapping[str, Any]], *, hashes: bool = True,
               present: set[str] | None = None) -> None:
        """Check every listed member against ``{name: {"sha256", "size"}}``: a plain
        path inside the record, present, not a git-LFS pointer, of the listed size and
        (``hashes``) sha256. RecordError (LfsPointerError) names the first bad member."""
        present = set(self.list()) if present is None else present
        for name, meta in files.items():
            if not check_member_name(name) or name == MANIFEST:
                raise RecordError(f"{self.where(MANIFEST)}: lists a path outside the record: {name!r}", fix=_FIX_COPY)
            if name not in present:
                raise RecordError(f"{self.where(name)}: missing from the record",
                                  fix="copy the whole record directory, or record again")
            if self.is_lfs_pointer(name):  # checked out without `git lfs pull`
                raise LfsPointerError(self.where(name))
            size = self.size(name)
            if size != meta["size"]:
                raise RecordError(f"{self.where(name)}: size {size} bytes, manifest says {meta['size']} "
                                  "(truncated or modified)", fix="copy the record again from its source")
            if hashes and self.sha256(name) != meta["sha256"]:
                raise RecordError(f"{self.where(name)}: sha256 does not match the manifest (corrupted or modified)",
                                  fix="copy the record again from its source")


class RecordWriter(ABC):
    """A record being written; visible only after :meth:`commit`. Use it as a context
    manager: an exception inside (or leaving without commit) calls :meth:`abort`."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._digests: dict[str, FileInfo | None] = {}  # None: spooled, hashed at commit
        self._state = "new"

    # -- what a backend implements ------------------------------------------------------------
    @abstractmethod
    def _begin(self) -> None:
        """Claim the place (refusing an existing record unless overwriting)."""

    @abstractmethod
    def _open_member(self, name: str) -> IO[bytes]:
        """A new writable binary file for member ``name`` (written in order, complete on close)."""

    @abstractmethod
    def spool(self, prefix: str) -> Path:
        """A local folder for the members ``prefix/FILE`` written with random access (the
        shard writer); hand each finished file over with :meth:`spooled`."""

    @abstractmethod
    def _spooled_info(self, name: str) -> FileInfo:
        """``{"sha256", "size"}`` of a spooled member (called by :meth:`members`)."""

    @abstractmethod
    def _publish(self, manifest: bytes) -> None:
        """Write ``manifest.json`` last and make the record visible in one step."""

    @abstractmethod
    def _discard(self) -> None:
        """Remove everything written; the place is as before :meth:`_begin`."""

    def free_space_folder(self) -> Path | None:
        """The local folder whose free space bounds the record, or None (no such bound)."""
        return None

    # -- the interface ----------------------------------------------------------------------
    def __enter__(self) -> RecordWriter:
        self._begin()
        self._state = "open"
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._state == "open":
            self.abort()
            if exc is None:
                raise RuntimeError(f"{self.location}: record writer closed without commit; nothing was kept")

    def _claim(self, name: str) -> None:
        if self._state != "open":
            raise RuntimeError(f"{self.location}: record writer is {self._state}, not open")
        if not check_member_name(name) or name == MANIFEST:
            raise ValueError(f"{name!r}: not a member name (a plain relative path, not {MANIFEST})")
        if name in self._digests:
            raise ValueError(f"{name}: written twice")
        self._digests[name] = None

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """Stream member ``name``: a writable binary file, hashed as it is written."""
        self._claim(name)
        f = _HashingFile(self._open_member(name))
        with f:
            yield cast(IO[bytes], f)
        self._digests[name] = {"sha256": f.hash.hexdigest(), "size": f.size}

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open(name) as f:
            f.write(data)

    def write_json(self, name: str, obj: Any) -> None:
        """``obj`` as parity writes JSON (:func:`parity._io.dumps_json`)."""
        self.write_bytes(name, dumps_json(obj).encode("utf-8"))

    def spooled(self, name: str) -> None:
        """The spooled file ``name`` (``spool(prefix) / file`` for ``prefix/file``) is
        finished. May be called from the shard writer's thread."""
        self._claim(name)

    def members(self) -> dict[str, FileInfo]:
        """``{name: {"sha256", "size"}}`` of every member written, by name (the manifest's
        ``files``)."""
        for name, info in self._digests.items():
            if info is None:
                self._digests[name] = self._spooled_info(name)
        return {name: dict(self._digests[name] or {}) for name in sorted(self._digests)}

    def commit(self, manifest: Mapping[str, Any]) -> None:
        """Write ``manifest`` (JSON) as ``manifest.json``, last, and publish the record."""
        if self._state != "open":
            raise RuntimeError(f"{self.location}: record writer is {self._state}, not open")
        self._state = "committing"
        try:
            self._publish(dumps_json(manifest).encode("utf-8"))
        except BaseException:
            self.abort()
            raise
        self._state = "committed"

    def abort(self) -> None:
        """Drop everything written (idempotent)."""
        if self._state in ("open", "committing"):
            self._state = "aborted"
            self._discard()


class _HashingFile:
    """A writable file that hashes and counts what goes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.hash, self.size = raw, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.size += memoryview(data).nbytes
        return self.raw.write(data) or 0

    def __enter__(self) -> _HashingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class RecordStore(ABC):
    """One kind of place records live in (a local folder, a bucket...)."""

    @abstractmethod
    def open_reader(self, location: str | os.PathLike[str]) -> RecordReader:
        """The record at ``location``; RecordError when there is none."""

    @abstractmethod
    def create(self, location: str | os.PathLike[str], *, overwrite: bool = False) -> RecordWriter:
        """A writer for a new record at ``location`` (``with store.create(...) as w``)."""

    def check_create(self, location: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Refuse, before any work, a place a record cannot be written to (ParityError).
        By default nothing is known to be wrong until :meth:`create`'s writer begins."""
        return None

    def is_record(self, location: str | os.PathLike[str]) -> bool:
        """Whether ``location`` holds a committed record (a manifest), unchecked."""
        try:
            return MANIFEST in self.open_reader(location).list()
        except (RecordError, OSError):
            return False


# -------------------------------------------------------------------- the local folder


class LocalReader(RecordReader):
    """A record folder. Nothing is followed: a symbolic link or special file anywhere
    inside refuses the record."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def where(self, name: str = "") -> str:
        return str(self.root / name) if name else str(self.root)

    def list(self) -> list[str]:
        files: list[str] = []
        stack = [(str(self.root), "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                raise RecordError(f"{self.root / prefix}: cannot be read ({exc.strerror})", fix=_FIX_COPY) from None
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink():
                    raise RecordError(f"{self.root / rel}: a symbolic link inside a record (refused: a record is "
                                      "read only from its own files)",
                                      fix="replace the link by a copy of the file, or record again")
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    files.append(rel)
                else:
                    raise RecordError(f"{self.root / rel}: not a regular file (a FIFO, socket or device) inside a "
                                      "record", fix="remove it; a record holds only files and folders")
        return sorted(files)

    def size(self, name: str) -> int:
        return os.stat(self.root / name, follow_symlinks=False).st_size

    def open(self, name: str) -> IO[bytes]:
        fd = os.open(self.root / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        return os.fdopen(fd, "rb")

    def sha256(self, name: str) -> str:
        return sha256_file(self.root / name)

    def is_lfs_pointer(self, name: str) -> bool:
        return is_lfs_pointer(self.root / name)

    def local_path(self, name: str) -> Path:
        return self.root / name


class LocalWriter(RecordWriter):
    """Writes into a temporary sibling folder (:func:`parity._io.atomic_dir`), renamed
    to the record's place on commit."""

    def __init__(self, final: Path, overwrite: bool) -> None:
        super().__init__(str(final))
        self.final, self.overwrite = final, overwrite
        self._dir: contextlib.AbstractContextManager[Path] | None = None
        self.root = final  # the temporary folder once begun

    def _begin(self) -> None:
        self._dir = atomic_dir(self.final, overwrite=self.overwrite)
        self.root = self._dir.__enter__()

    def _path(self, name: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _open_member(self, name: str) -> IO[bytes]:
        return open(self._path(name), "wb")

    def spool(self, prefix: str) -> Path:
        return self.root / prefix  # the shard writer creates it (its O_DIRECT probe looks at the parent first)

    def _spooled_info(self, name: str) -> FileInfo:
        path = self.root / name
        return {"sha256": sha256_file(path), "size": path.stat().st_size}

    def free_space_folder(self) -> Path:
        return self.root.parent

    def _publish(self, manifest: bytes) -> None:
        stray = set(LocalReader(self.root).list()) - set(self._digests)
        if stray:  # every file of a record goes through the writer, so the manifest lists it
            raise RuntimeError(f"{self.location}: files written around the record writer: {sorted(stray)[:3]}")
        atomic_write_bytes(self.root / MANIFEST, manifest)
        cm, self._dir = self._dir, None
        if cm is not None:
            cm.__exit__(None, None, None)  # the rename: the record appears whole

    def _discard(self) -> None:
        if self._dir is not None:
            error = RecordError(f"{self.location}: not written")  # atomic_dir removes the folder on an exception
            with contextlib.suppress(RecordError):
                self._dir.__exit__(RecordError, error, None)
            self._dir = None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._state == "open" and exc is not None and self._dir is not None:
            self._state = "aborted"
            cm, self._dir = self._dir, None
            cm.__exit__(exc_type, exc, tb)  # removes the folder; a full disk becomes a ParityError naming the place
            return
        super().__exit__(exc_type, exc, tb)


class LocalStore(RecordStore):
    """Records as folders on a local (or mounted) file system."""

    @staticmethod
    def path(location: str | os.PathLike[str]) -> Path:
        text = os.fsdecode(location)
        if text.startswith("file://"):
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(text).path))
        return Path(text)

    def open_reader(self, location: str | os.PathLike[str]) -> LocalReader:
        root = self.path(location)
        if not root.exists():
            raise RecordError(f"{root}: no such record", fix="pass the directory written by `parity record`")
        if not root.is_dir():
            raise RecordError(f"{root}: not a directory", fix="pass the directory written by `parity record`")
        return LocalReader(root)

    def create(self, location: str | os.PathLike[str], *, overwrite: bool = False) -> LocalWriter:
        return LocalWriter(self.path(location), overwrite)

    def check_create(self, location: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        from parity._io import _output_parent

        _output_parent(self.path(location), want_dir=True)

    def is_record(self, location: str | os.PathLike[str]) -> bool:
        return (self.path(location) / MANIFEST).is_file()


# -------------------------------------------------------------------- choosing the store

_stores: dict[str, Callable[[], RecordStore]] = {"file": LocalStore}


def register_store(scheme: str, factory: Callable[[], RecordStore]) -> None:
    """Serve ``scheme://`` locations (e.g. ``"s3"``) with ``factory()`` (usually the store class)."""
    _stores[scheme.lower()] = factory


def unregister_store(scheme: str) -> None:
    if scheme.lower() != "file":
        _stores.pop(scheme.lower(), None)


def scheme_of(location: str | os.PathLike[str]) -> str:
    """The URL scheme of ``location``, ``"file"`` for a local path."""
    match = _SCHEME.match(os.fsdecode(location))
    return match.group(1).lower() if match else "file"


def location_text(location: str | os.PathLike[str]) -> str:
    """``location`` as text, a URL's ``//`` restored (``Path("s3://b/k")`` reads ``s3:/b/k``)."""
    text = os.fsdecode(location)
    match = _SCHEME.match(text)
    if match and not text.startswith("//", match.end() - 1):
        text = f"{text[:match.end()]}/{text[match.end():]}"
    return text


def store_for(location: str | os.PathLike[str]) -> RecordStore:
    """The store for ``location``; RecordError (exit 2) for a scheme no store serves."""
    scheme = scheme_of(location)
    factory = _stores.get(scheme)
    if factory is not None:
        return factory()
    shown = location_text(location)
    raise RecordError(f"{shown}: no record store for {scheme}:// locations",
                      fix="give a local folder or an object storage URL (s3://, gs://, az://...)")

