"""Background writer: size-bounded safetensors shards written while the model runs.

:meth:`ShardWriter.put` copies a tensor's bytes, at once, into the next free place of
the current shard's image: fixed-size chunks that are recycled once written, so the
copy lands in memory that is already mapped (fresh memory costs a page fault per
4 KiB, measured at 5-15x the copy itself, and a record writes the same activation
sizes batch after batch). A full chunk goes to the writer thread, which writes it at
its offset in the shard file. Since the safetensors header comes first, a shard that
outgrows one chunk reserves room for its header and writes it last, padded with
spaces as the format allows; a small shard is written in one go with an exact header.
At most ``queue_bytes`` of chunks exist, so ``put`` waits for the disk rather than
let memory grow with the number of batches.

Where the file system takes ``O_DIRECT`` (Linux, not tmpfs), the writer thread writes
full chunks with it: the disk reads them from memory, with no copy into the page cache,
so the thread itself uses next to no CPU even where torch's threads use every core (the
disk's own work still slows the model: about 0.2 ms per MB written on the CI VM).
Measured on the 2-core CI machine: full capture of MiniLM 151 ms per forward against
183 ms with buffered writes from the caller, conv net 388 against 607 (BENCHMARKS.md).

Without ``O_DIRECT`` and with no core to spare (``inline``), a writer thread would only
compete with the model: there, once a shard streams, ``put`` writes a CPU tensor's
bytes at their offset itself, straight from the tensor, and the kernel's copy into the
page cache is the only copy.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import mmap
import os
import queue
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from parity.errors import RecordError

SHARD_BYTES = 64 << 20
QUEUE_BYTES = 32 << 20  # chunks in flight: enough to keep the disk busy, few to page in
CHUNK_BYTES = 8 << 20
_ALIGN = 4096  # chunks and the reserved header room are whole pages
_MIN_RESERVE = 16 << 10
_MAX_RESERVE = 8 << 20
_STOP = object()


@functools.lru_cache(maxsize=64)
def safetensors_dtype(dtype: Any) -> str | None:
    """The safetensors name of a torch dtype, or None when it has none."""
    import torch

    names = {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
        torch.uint8: "U8", torch.bool: "BOOL", torch.complex64: "C64",
    }
    for attr, name in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"), ("uint16", "U16"),
                       ("uint32", "U32"), ("uint64", "U64")):
        if hasattr(torch, attr):
            names[getattr(torch, attr)] = name
    return names.get(dtype)


def storable_dtype(dtype: Any, what: str) -> str:
    """The safetensors name of ``dtype``; RecordError naming ``what`` (the stage or layer
    tensor) when a record cannot hold it, so nothing is ever written with a null dtype."""
    name = safetensors_dtype(dtype)
    if name is None:
        shown = str(dtype).removeprefix("torch.")
        raise RecordError(f"{what}: dtype {shown} cannot be stored in a record (safetensors has no {shown})",
                          fix="convert that value in the target (complex128 -> complex64, float64 real and "
                              "imaginary parts), or record with --capture outputs if it is a layer")
    return name


def write_safetensors(dest: Path | IO[bytes], named: list[tuple[str, Any]],
                      metadata: dict[str, str] | None = None) -> int:
    """Write CPU tensors as one safetensors file straight from their buffers (no
    serialisation copy), in order: ``dest`` is a path or a binary file written
    sequentially (a record store member). Returns the file size in bytes."""
    import torch

    header: dict[str, Any] = {}
    offset = 0
    what = dest.name if isinstance(dest, Path) else str(getattr(dest, "name", "safetensors"))
    for name, t in named:
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": storable_dtype(t.dtype, f"{Path(what).name}: tensor {name}"),
                        "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the format aligns the data section to 8 bytes
    with open(dest, "wb") if isinstance(dest, Path) else contextlib.nullcontext(dest) as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, t in named:
            if t.numel():
                f.write(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return 8 + len(raw) + offset


class ShardWriter:
    """Writes tensors into ``directory/NNNNN.safetensors``; the files are written by a
    background thread while the caller goes on.

    After :meth:`close`, ``blobs[name]`` is ``{"shard", "tensor"}`` (``tensor`` is the
    stored name). A dtype safetensors cannot hold is refused (RecordError) by :meth:`put`.
    ``on_shard(rel)`` hears of each shard file once it is complete and closed (from the
    thread that finished it): a record store's :meth:`~parity.records.store.RecordWriter.spooled`.
    """

    def __init__(self, directory: Path, rel_prefix: str, *, shard_bytes: int = SHARD_BYTES,
                 queue_bytes: int = QUEUE_BYTES, chunk_bytes: int = CHUNK_BYTES, inline: bool | None = None,
                 direct: bool | None = None, on_shard: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.rel_prefix = rel_prefix
        self.on_shard = on_shard
        self.shard_bytes = shard_bytes
        self.chunk_bytes = _round_up(max(_ALIGN, min(chunk_bytes, shard_bytes)), _ALIGN)
        self.max_chunks = max(2, queue_bytes // self.chunk_bytes)
        self.blobs: dict[str, dict[str, Any]] = {}
        self.bytes_written = 0
        self.shards: list[str] = []
        self.peak_chunks = 0  # most chunks that ever existed at once (memory bound, for tests)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._free: list[Any] = []
        self._chunks = 0
        self._error: BaseException | None = None
        # The shard being filled (caller's thread only).
        self._header: dict[str, Any] = {}
        self._header_bytes = 2
        self._size = 0  # data bytes in the shard
        self._chunk: Any = None  # (mmap, numpy view) being filled
        self._fill = 0
        self._chunk_start = 0  # data position of the chunk's first byte
        self._reserve = 0  # header room in a streamed shard, 0 while it fits one chunk
        #: full chunks go to the disk with O_DIRECT: no copy into the page cache, so the
        #: writer thread costs next to no CPU while the model runs
        self.direct = (not inline and _direct_io(directory)) if direct is None else direct
        #: write from the caller's thread: there is no core to spare for a writer thread
        self.inline = (not self.direct and not _spare_core()) if inline is None else inline
        self._files: dict[int, _ShardFile] = {}
        self._thread: threading.Thread | None = None
        if not self.inline:
            self._thread = threading.Thread(target=self._run, name="parity-shard-writer", daemon=True)
            self._thread.start()

    # -- caller's thread -------------------------------------------------------------------
    def put(self, name: str, tensor: Any) -> None:
        """Copy ``tensor``'s current values into the shard under a unique ``name``; later
        changes to ``tensor`` do not reach the record. May wait for the disk."""
        import torch

        self._raise_if_failed()
        dtype = storable_dtype(tensor.dtype, f"{self.rel_prefix}: layer tensor {name}")
        nbytes = tensor.numel() * tensor.element_size()
        shape = list(tensor.shape)
        # An upper bound of the entry's JSON: keys and punctuation, and 21 per number.
        entry_bytes = len(json.dumps(name)) + 60 + 21 * (len(shape) + 2)
        if self._reserve and self._header_bytes + entry_bytes > self._reserve - 8:
            self._finish_shard()  # a streamed shard's header must fit the room reserved for it
        self._header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [self._size, self._size + nbytes]}
        self._header_bytes += entry_bytes
        self.blobs[name] = {"shard": None, "tensor": name}
        if nbytes:
            data = tensor.detach().reshape(-1).contiguous().view(torch.uint8)
            if data.device.type != "cpu":
                self._copy_in(data, nbytes)
            elif self.inline and (self._reserve or self._fill + nbytes > self.chunk_bytes):
                # No core for a writer thread: the kernel's copy into the page cache is the
                # only copy, made now from the tensor itself (measured 15-30% faster here
                # than copying into a chunk for a thread to write).
                self._stream_chunk(nbytes)
                self._submit(("direct", len(self.shards), self._reserve + self._size, data.numpy()))
            else:
                self._copy_in(data.numpy(), nbytes)
        self._size += nbytes
        if self._size >= self.shard_bytes:
            self._finish_shard()

    def put_many(self, named: list[tuple[str, Any]]) -> None:
        """:meth:`put` for several tensors."""
        for name, tensor in named:
            self.put(name, tensor)

    def close(self) -> dict[str, dict[str, Any]]:
        """Write what is left, stop the thread and return ``blobs``; re-raises a writer failure."""
        try:
            if self._header and self._error is None:
                self._finish_shard()
        finally:
            self._stop()
        self._raise_if_failed()
        return self.blobs

    def abort(self) -> None:
        """Stop the thread after a failure elsewhere; its own errors are dropped."""
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._release()

    def location(self, name: str) -> tuple[str | None, str | None]:
        """(shard relpath, stored tensor name) of a put name, after close()."""
        blob = self.blobs.get(name)
        if blob is None or blob["tensor"] is None:
            return None, None
        return self.blobs[blob["tensor"]]["shard"], blob["tensor"]

    def _copy_in(self, data: Any, nbytes: int) -> None:
        """Copy ``nbytes`` of flat uint8 ``data`` (numpy, or a torch tensor on a device)
        into the shard's chunks, handing each full chunk to the thread."""
        import torch

        done = 0
        while done < nbytes:
            if self._chunk is None:
                self._chunk = self._take_chunk()
                self._fill, self._chunk_start = 0, self._size + done
            view = self._chunk[1]
            k = min(nbytes - done, self.chunk_bytes - self._fill)
            if isinstance(data, np.ndarray):
                np.copyto(view[self._fill:self._fill + k], data[done:done + k])
            else:
                torch.from_numpy(view[self._fill:self._fill + k]).copy_(data[done:done + k])
            self._fill += k
            done += k
            if self._fill == self.chunk_bytes:
                self._stream_chunk()

    def _stream_chunk(self, upcoming: int = 0) -> None:
        """Write the current chunk's data at its offset (reserving header room when the
        shard starts streaming; ``upcoming`` bytes are about to follow) and let the chunk go."""
        if not self._reserve:  # room for twice the header this shard would have at this rate
            projected = self._header_bytes * max(1, self.shard_bytes // max(self._size + self._fill + upcoming, 1))
            self._reserve = _round_up(min(max(_MIN_RESERVE, 2 * projected + 8), _MAX_RESERVE), _ALIGN)
        if self._chunk is not None:
            chunk, self._chunk = self._chunk, None
            if self._fill:
                self._submit(("write", len(self.shards), self._reserve + self._chunk_start, chunk, self._fill))
            else:
                self._give_back(chunk)
        self._fill = 0

    def _submit(self, item: tuple[Any, ...]) -> None:
        """Do a write now (inline) or hand it to the thread."""
        if not self.inline:
            self._queue.put(item)
            return
        try:
            self._do(item, self._files)
        except BaseException as exc:
            self._error = exc
            self._raise_if_failed()
            raise

    def _finish_shard(self) -> None:
        rel = f"{self.rel_prefix}/{len(self.shards):05d}.safetensors"
        names = list(self._header)
        header = json.dumps(self._header, separators=(",", ":")).encode("utf-8")
        if not self._reserve:  # the whole shard sits in one chunk: one buffered write, exact header
            header += b" " * (-len(header) % 8)
            chunk, self._chunk = self._chunk, None
            self._submit(("small", rel, header, chunk, self._size, names))
            total = 8 + len(header) + self._size
        else:
            self._stream_chunk()
            if len(header) > self._reserve - 8:  # cannot happen: put() starts a new shard first
                raise RecordError(f"{rel}: header outgrew its reserved {self._reserve} bytes")
            header += b" " * (self._reserve - 8 - len(header))
            self._submit(("finish", len(self.shards), rel, header, self._reserve + self._size, names))
            total = self._reserve + self._size
        self.bytes_written += total
        self.shards.append(rel)
        self._header, self._header_bytes, self._size = {}, 2, 0
        self._chunk, self._fill, self._chunk_start, self._reserve = None, 0, 0, 0

    def _take_chunk(self) -> tuple[Any, Any]:
        with self._cond:
            while not self._free and self._chunks >= self.max_chunks and self._error is None:
                self._cond.wait()
            self._raise_if_failed()
            if self._free:
                return self._free.pop()  # type: ignore[no-any-return]
            self._chunks += 1
            self.peak_chunks = max(self.peak_chunks, self._chunks)
        buffer = _anonymous_map(self.chunk_bytes)
        return buffer, np.frombuffer(buffer, dtype=np.uint8)

    def _give_back(self, chunk: Any) -> None:
        if chunk is not None:
            with self._cond:
                self._free.append(chunk)
                self._cond.notify_all()

    def _release(self) -> None:
        """Unmap the chunks (after the thread has stopped and given every chunk back)."""
        with self._cond:
            buffers = [buffer for buffer, _ in self._free]
            self._free.clear()
        self._chunk = None
        for buffer in buffers:
            with contextlib.suppress(BufferError):  # a numpy view still alive: left to the GC
                buffer.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, OSError):
                raise RecordError(f"{self.directory}: cannot write activations ({self._error})",
                                  fix="free disk space or choose another -o path") from self._error
            raise self._error

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        files: dict[int, _ShardFile] = {}
        try:
            while (item := self._queue.get()) is not _STOP:
                if self._error is not None:  # failed: drain, give chunks back so put() can raise
                    self._give_back(item[3] if item[0] in ("write", "small") else None)
                    continue
                try:
                    self._do(item, files)
                except BaseException as exc:
                    self._error = exc
                    with self._cond:
                        self._cond.notify_all()
        finally:
            for f in files.values():
                f.close()

    def _do(self, item: tuple[Any, ...], files: dict[int, _ShardFile]) -> None:
        kind = item[0]
        if kind == "direct":  # inline only: straight from the caller's tensor
            _, index, offset, data = item
            self._file(index, files).write(memoryview(data), offset)
        elif kind == "write":
            _, index, offset, chunk, length = item
            try:
                self._file(index, files).write_chunk(memoryview(chunk[0]), length, offset)
            finally:
                self._give_back(chunk)
        elif kind == "small":
            _, rel, header, chunk, size, names = item
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with open(self.directory / Path(rel).name, "wb") as f:
                    f.write(struct.pack("<Q", len(header)))
                    f.write(header)
                    if size:
                        f.write(memoryview(chunk[0])[:size])
            finally:
                self._give_back(chunk)
            self._mark(rel, names)
        else:  # finish a streamed shard: header into its reserved room, exact length
            _, index, rel, header, total, names = item
            shard = files.pop(index)
            shard.write(memoryview(struct.pack("<Q", len(header)) + header), 0)
            shard.finish(total)
            self._mark(rel, names)

    def _file(self, index: int, files: dict[int, _ShardFile]) -> _ShardFile:
        if index not in files:
            self.directory.mkdir(parents=True, exist_ok=True)
            files[index] = _ShardFile(self.directory / f"{index:05d}.safetensors", self.direct)
        return files[index]

    def _mark(self, rel: str, names: list[str]) -> None:
        for name in names:
            self.blobs[name]["shard"] = rel
        if self.on_shard is not None:
            self.on_shard(rel)


class _ShardFile:
    """One shard file, written at offsets."""

    def __init__(self, path: Path, direct: bool = False) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        self.direct_fd = -1  # a second descriptor for whole, aligned pages
        if direct:
            with contextlib.suppress(OSError):  # then every write is buffered
                self.direct_fd = os.open(path, os.O_WRONLY | os.O_DIRECT)

    def write(self, data: memoryview, offset: int) -> None:
        _pwrite_all(self.fd, data, offset)

    def write_chunk(self, chunk: memoryview, length: int, offset: int) -> None:
        """The first ``length`` bytes of a page-aligned chunk at ``offset``: whole pages
        with O_DIRECT where possible (the padding past the data, in a shard's last
        chunk, is cut off by :meth:`finish`), else buffered."""
        if self.direct_fd >= 0 and offset % _ALIGN == 0:
            try:
                _pwrite_all(self.direct_fd, chunk[:_round_up(length, _ALIGN)], offset)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: the device wants other alignment; buffered from now on
                    raise
                os.close(self.direct_fd)
                self.direct_fd = -1
        _pwrite_all(self.fd, chunk[:length], offset)

    def finish(self, size: int) -> None:
        os.ftruncate(self.fd, size)  # drop the last chunk's padding
        self.close()

    def close(self) -> None:
        for fd in (self.fd, self.direct_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.direct_fd = -1


def _spare_core() -> bool:
    """Whether this process has a core beyond the ones torch's intra-op threads use."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return cores > torch.get_num_threads()


def _direct_io(directory: Path) -> bool:
    """Whether files in ``directory`` (or its parent, before it exists) take O_DIRECT
    writes: Linux and a file system that supports them (not tmpfs)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    where = directory if directory.is_dir() else directory.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".parity-direct-", dir=where)
    except OSError:
        return False
    try:
        os.close(fd)
        fd = os.open(probe, os.O_WRONLY | flag)
        try:
            page = _anonymous_map(_ALIGN)
            try:
                return os.pwrite(fd, page, 0) == _ALIGN
            finally:
                page.close()
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def _anonymous_map(size: int) -> mmap.mmap:
    """Anonymous memory, pre-faulted in one go where the OS can (MAP_POPULATE measured
    40% cheaper than touching 4 KiB pages one by one)."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if populate:
        try:
            return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
        except OSError:
            pass
    return mmap.mmap(-1, size)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, data, offset)
        else:  # Windows
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, data)
        data, offset = data[n:], offset + n


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to
