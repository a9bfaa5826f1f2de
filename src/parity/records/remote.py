"""Records on object storage through fsspec (``s3://``, ``gs://``, ``az://``...; ``parity[s3]``).

The record store of :mod:`parity.records.store` for URLs; the layout is a local record's,
one object per member under the URL's prefix (``s3://bucket/golden/manifest.json``,
``.../activations/00000.safetensors``). Credentials are the backend's own (for S3:
environment, ``~/.aws``, instance roles, ``AWS_ENDPOINT_URL``); parity never sees or
writes them.

Writing (:class:`FsspecWriter`):

- streamed members (``layers.json``, ``env.json``...) go straight to their objects through
  fsspec's writable files, which upload in parts of :data:`BLOCK_BYTES` (multipart on S3):
  memory is bounded, never a whole member;
- shards are written by the shard writer into a local spool folder (a temporary folder)
  and each is uploaded, hashed on the way, and deleted as soon as it is finished, while
  the model runs: at most a shard or two are on the local disk at once;
- ``manifest.json`` is put last. A record without it is no record: readers say so and
  exit 2. A marker object, ``.parity-partial``, lives beside the members until the
  manifest is there, so a later ``record`` to the same place knows the objects it finds
  are leftovers of an interrupted record and removes them;
- replacing a record (``--overwrite``) writes into a sibling prefix
  ``<prefix>.parity-tmp-<token>`` while the model runs, so a failed capture leaves the
  old record as it was; at commit the old record is removed (manifest first), the new
  members are copied into place (server-side) and the manifest is put last. Object
  stores have no atomic rename: a failure during that copy leaves no record, never a
  mixed one;
- an exception (or Ctrl-C) deletes what was uploaded; a killed process leaves objects
  without a manifest, which no reader takes for a record.

Reading (:class:`FsspecReader`): the manifest is read once and keys a local cache,
``<cache_root>/records/<sha256 of manifest.json>/``. Each member is downloaded once,
streamed and hashed, and kept there only when its sha256 and size are those the manifest
lists, noted with the object's version in the listing (S3's ETag); a member that does not
match is kept aside for this read only, so the integrity check refuses it (exit 2)
exactly as for a local record. A cached member is used only while the bucket still
lists the same version of its object: an object changed since (corrupted, replaced) is
downloaded again and checked again, so a damaged bucket is refused even where a good
copy is cached. Safetensors shards are then mapped from the cache like local files. The cache is
content-addressed (the same manifest lists the same bytes), shared by every URL holding
the same record, and safe to delete at any time. It holds at most ``$PARITY_RECORD_CACHE_MAX``
(default 20 GB): opening a record removes the least recently used others beyond that.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from parity._io import cache_root, remote_errors, sha256_file, url_fs, url_shown, url_text
from parity._text import size_of
from parity.errors import RecordError
from parity.records.store import MANIFEST, FileInfo, RecordReader, RecordStore, RecordWriter

#: part size of uploads (S3's minimum is 5 MiB): the memory one streamed member holds
BLOCK_BYTES = 8 << 20
#: marker object of a record being written, removed once the manifest is there
PARTIAL = ".parity-partial"
_CHUNK = 1 << 20
_FIX_RECORD = "pass the URL given to `parity record -o`, or record again"
_FIX_COPY = "copy the record again from its source, or record again"
#: beside the cached members: the object version (ETag...) each was downloaded from
_SOURCES = ".parity-sources"


#: the cache's size limit: ``$PARITY_RECORD_CACHE_MAX`` (``50G``, ``0``: keep only the
#: record being read), else this
DEFAULT_CACHE_MAX = 20 * 10**9
ENV_CACHE_MAX = "PARITY_RECORD_CACHE_MAX"


def cache_folder() -> Path:
    """Where records read from object storage are cached (one folder per manifest)."""
    return cache_root() / "records"


def cache_limit() -> int:
    """Bytes the record cache may hold (:data:`ENV_CACHE_MAX`, else :data:`DEFAULT_CACHE_MAX`)."""
    text = os.environ.get(ENV_CACHE_MAX, "").strip()
    if not text:
        return DEFAULT_CACHE_MAX
    size = size_of(text)
    if size is None:
        raise RecordError(f"{ENV_CACHE_MAX}={text}: not a size", fix="give a size such as 50G or 500M, or unset it")
    return size


def prune_cache(keep: Path, limit: int | None = None) -> list[Path]:
    """Remove the least recently used records of the cache until it holds at most
    ``limit`` bytes (:func:`cache_limit`); ``keep`` (the record being read) stays, whatever
    its size. A record's last use is its folder's mtime, touched when it is opened."""
    limit = cache_limit() if limit is None else limit
    try:
        folders = [p for p in cache_folder().iterdir() if p.is_dir() and p != keep]
    except OSError:
        return []
    sizes = {p: _tree_size(p) for p in folders}
    total = sum(sizes.values()) + _tree_size(keep)
    removed = []
    for folder in sorted(folders, key=lambda p: p.stat().st_mtime):
        if total <= limit:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= sizes[folder]
        removed.append(folder)
    return removed


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class FsspecStore(RecordStore):
    """Records under a URL prefix of any fsspec file system."""

    def open_reader(self, location: str | os.PathLike[str]) -> FsspecReader:
        url = url_text(location)
        fs, root = url_fs(url, error=RecordError)
        with remote_errors(url, "cannot be read", RecordError):
            try:
                manifest = bytes(fs.cat_file(f"{root}/{MANIFEST}"))
            except FileNotFoundError as exc:
                if "bucket" in str(exc).lower():
                    raise
                raise RecordError(f"{url_shown(url)}: no record here (no {MANIFEST}: nothing was recorded there, or "
                                  "the record was interrupted before it was complete)", fix=_FIX_RECORD) from None
        return FsspecReader(url, fs, root, manifest)

    def create(self, location: str | os.PathLike[str], *, overwrite: bool = False) -> FsspecWriter:
        url = url_text(location)
        fs, root = url_fs(url, error=RecordError)
        return FsspecWriter(url, fs, root, overwrite)

    def check_create(self, location: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Before the model loads: the backend is installed, the bucket is there and the
        credentials may list it, and the prefix holds no record (unless ``overwrite``)."""
        self.create(location, overwrite=overwrite).plan()

    def is_record(self, location: str | os.PathLike[str]) -> bool:
        url = url_text(location)
        fs, root = url_fs(url, error=RecordError)
        with remote_errors(url, "cannot be read", RecordError):
            return bool(fs.isfile(f"{root}/{MANIFEST}"))


class FsspecReader(RecordReader):
    """A committed record under a URL prefix, read through the local cache."""

    def __init__(self, url: str, fs: Any, root: str, manifest: bytes) -> None:
        super().__init__(url)
        self.fs, self.root, self.manifest_bytes = fs, root, manifest
        self.cache = cache_folder() / hashlib.sha256(manifest).hexdigest()
        self._sizes: dict[str, int] | None = None
        self._versions: dict[str, str] = {}  # what the store says identifies each object's content
        self._fetched: dict[str, Path] = {}
        self._expected = _listed_files(manifest)
        with contextlib.suppress(OSError):  # its last use, for the pruning of the others
            self.cache.mkdir(parents=True, exist_ok=True)
            os.utime(self.cache)
        prune_cache(self.cache)

    def where(self, name: str = "") -> str:
        return url_shown(super().where(name))

    def list(self) -> list[str]:
        return sorted(self._listing())

    def _listing(self) -> dict[str, int]:
        if self._sizes is None:
            with remote_errors(self.location, "cannot be listed", RecordError):
                self.fs.invalidate_cache()  # all of it: s3fs drops only the path and its parents
                found = self.fs.find(self.root, detail=True)
            prefix = self.root + "/"
            found = {path[len(prefix):]: info for path, info in found.items()
                     if path.startswith(prefix) and info.get("type", "file") == "file"}
            self._sizes = {name: int(info.get("size") or 0) for name, info in found.items()}
            self._versions = {name: version for name, info in found.items() if (version := _version(info))}
            self._sizes[MANIFEST] = len(self.manifest_bytes)  # the bytes read, whatever is there now
        return self._sizes

    def size(self, name: str) -> int:
        if name in self._fetched:
            return self._fetched[name].stat().st_size
        sizes = self._listing()
        if name not in sizes:
            raise FileNotFoundError(self.where(name))
        return sizes[name]

    def open(self, name: str) -> IO[bytes]:
        if name == MANIFEST:
            return io.BytesIO(self.manifest_bytes)
        return open(self.local_path(name), "rb")

    def sha256(self, name: str) -> str:
        if name == MANIFEST:
            return hashlib.sha256(self.manifest_bytes).hexdigest()
        return sha256_file(self.local_path(name))

    def local_path(self, name: str) -> Path:
        """The member in the local cache, downloaded on first use (see the module docstring)."""
        if name == MANIFEST:
            raise ValueError(f"{MANIFEST} is read from memory")
        if name not in self._fetched:
            self._fetched[name] = self._fetch(name)
        return self._fetched[name]

    def _fetch(self, name: str) -> Path:
        final, source = self.cache / name, self.cache / _SOURCES / name
        self._listing()
        expected, version = self._expected.get(name), self._versions.get(name)
        if final.is_file() and expected is not None and version and _read_text(source) == version:
            return final  # verified when this very object (same ETag) was downloaded
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, remote_errors(self.where(name), "cannot be read", RecordError), \
                    self.fs.open(f"{self.root}/{name}", "rb", block_size=BLOCK_BYTES) as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if expected is not None and (digest.hexdigest(), size) == expected:
                os.replace(tmp, final)
                if version:
                    _write_text(source, version)
                return final
            fd_aside, aside = tempfile.mkstemp(dir=_aside_folder(), suffix=f"-{Path(name).name}")
            os.close(fd_aside)
            shutil.move(tmp, aside)  # read this once, so the check names it; never cached
            return Path(aside)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


_aside: list[Path] = []


def _aside_folder() -> Path:
    """This process's folder for members that did not match the manifest (removed at exit)."""
    if not _aside:
        _aside.append(Path(tempfile.mkdtemp(prefix="parity-unverified-")))
        atexit.register(shutil.rmtree, _aside[0], True)
    return _aside[0]


def _version(info: dict[str, Any]) -> str | None:
    """What identifies an object's content in a listing (S3's ETag, GCS's generation...), or None."""
    for key in ("ETag", "etag", "generation", "md5Hash", "VersionId", "LastModified", "last_modified", "mtime",
                "created"):
        if info.get(key) not in (None, ""):
            return f"{key}={info[key]} size={info.get('size')}"
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_text(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):  # a cache: failing to note the source only costs a download
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


def _listed_files(manifest: bytes) -> dict[str, tuple[str, int]]:
    """``{name: (sha256, size)}`` as the manifest lists them (empty when it is not readable:
    read_record refuses such a manifest itself)."""
    try:
        files = json.loads(manifest.decode("utf-8")).get("files")
        return {str(k): (str(v["sha256"]), int(v["size"])) for k, v in files.items()}
    except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
        return {}


class FsspecWriter(RecordWriter):
    """A record being uploaded; see the module docstring for the order of operations."""

    def __init__(self, url: str, fs: Any, root: str, overwrite: bool) -> None:
        super().__init__(url)
        self.fs, self.root, self.overwrite = fs, root, overwrite
        self.dest = root  # where members go: the record's prefix, or a sibling while replacing one
        self.replacing = False
        self._spool: Path | None = None
        self._uploaded: list[str] = []
        self._lock = threading.Lock()

    def _remote(self, doing: str = "cannot be written") -> contextlib.AbstractContextManager[None]:
        return remote_errors(self.location, doing, RecordError)

    def plan(self) -> list[str]:
        """Check the place (see :meth:`FsspecStore.check_create`); the keys found under it."""
        if "/" not in self.root.strip("/"):  # the staging prefix of --overwrite would be another bucket
            raise RecordError(f"{url_shown(self.location)}: a record needs a prefix inside the bucket, not the bucket "
                              "itself", fix=f"write it to {url_shown(self.location).rstrip('/')}/NAME")
        with self._remote("cannot be listed"):
            self.fs.invalidate_cache()
            found = [str(p) for p in self.fs.find(self.root)]
        names = {p[len(self.root) + 1:] for p in found}
        if MANIFEST in names and not self.overwrite:
            raise RecordError(f"{url_shown(self.location)}: already holds a record",
                              fix="pass --overwrite to replace it, or choose another prefix")
        if names and MANIFEST not in names and PARTIAL not in names and not self.overwrite:
            raise RecordError(f"{url_shown(self.location)}: not empty ({len(names)} objects, and no record)",
                              fix="choose an empty prefix, or pass --overwrite to replace what is there")
        return found

    def _begin(self) -> None:
        found = self.plan()
        with self._remote():
            if f"{self.root}/{MANIFEST}" in found:
                self.replacing = True  # the old record stays readable until commit
                self.dest = f"{self.root}.parity-tmp-{secrets.token_hex(6)}"
            elif found:  # an interrupted record's leftovers (or, with --overwrite, what was there)
                self.fs.rm(found)
            marker = {"writer": f"{socket.gethostname()}:{os.getpid()}", "started": time.time()}
            self.fs.pipe_file(f"{self.dest}/{PARTIAL}", json.dumps(marker).encode())
        self._spool = Path(tempfile.mkdtemp(prefix="parity-spool-"))

    def _open_member(self, name: str) -> IO[bytes]:
        with self._remote():
            raw = self.fs.open(f"{self.dest}/{name}", "wb", block_size=BLOCK_BYTES)
        with self._lock:
            self._uploaded.append(name)
        return _RemoteFile(raw, self)  # type: ignore[return-value]

    def spool(self, prefix: str) -> Path:
        assert self._spool is not None, "spool() before the writer began"
        return self._spool / prefix

    def spooled(self, name: str) -> None:
        """Upload the finished shard now (from the shard writer's thread), then delete it."""
        super().spooled(name)
        self._digests[name] = self._upload(name)

    def _upload(self, name: str) -> FileInfo:
        assert self._spool is not None
        local = self._spool / name
        digest, size = hashlib.sha256(), 0
        with self._lock:
            self._uploaded.append(name)
        with open(local, "rb") as src, self._remote(), \
                self.fs.open(f"{self.dest}/{name}", "wb", block_size=BLOCK_BYTES) as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
        local.unlink()
        return {"sha256": digest.hexdigest(), "size": size}

    def _spooled_info(self, name: str) -> FileInfo:
        return self._upload(name)  # only a shard handed over without spooled(): none today

    def _publish(self, manifest: bytes) -> None:
        assert self._spool is not None
        stray = [str(p.relative_to(self._spool)) for p in self._spool.rglob("*") if p.is_file()]
        if stray:  # every file of a record goes through the writer, so the manifest lists it
            raise RuntimeError(f"{self.location}: files written around the record writer: {sorted(stray)[:3]}")
        with self._remote():
            if self.replacing:
                self._swap_in()
            self.fs.pipe_file(f"{self.root}/{MANIFEST}", manifest)  # last: the record is visible now
        with contextlib.suppress(Exception):
            self.fs.rm(f"{self.root}/{PARTIAL}")
        shutil.rmtree(self._spool, ignore_errors=True)

    def _swap_in(self) -> None:
        """Replace the old record by the staged one: old manifest first, then its members,
        then a server-side copy of each new member."""
        self.fs.rm(f"{self.root}/{MANIFEST}")
        self.fs.invalidate_cache()
        old = [str(p) for p in self.fs.find(self.root)]
        if old:
            self.fs.rm(old)
        self.fs.pipe_file(f"{self.root}/{PARTIAL}", b"{}")
        for name in self._digests:
            self.fs.copy(f"{self.dest}/{name}", f"{self.root}/{name}")
        self.fs.rm(f"{self.dest}", recursive=True)

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # best effort: without a manifest nothing is visible anyway
            self.fs.invalidate_cache()
            left = [str(p) for p in self.fs.find(self.dest)] if self.dest != self.root else [
                f"{self.dest}/{name}" for name in self._uploaded]
            self.fs.rm([*left, f"{self.dest}/{PARTIAL}"])
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)


class _RemoteFile:
    """fsspec's writable file, its storage failures turned into one-line RecordErrors."""

    def __init__(self, raw: Any, writer: FsspecWriter) -> None:
        self.raw, self.writer = raw, writer

    def write(self, data: Any) -> int:
        with self.writer._remote():
            return int(self.raw.write(data) or 0)

    def close(self) -> None:
        with self.writer._remote():
            self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)
