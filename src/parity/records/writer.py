"""Background writer: size-bounded safetensors shards written while the model runs.

The hook thread hands over private CPU copies with :meth:`ShardWriter.put` (already
hashed and de-duplicated by the capture); the writer thread appends them to the
current shard, which is written once it reaches ``shard_bytes``. The thread does I/O
only, which releases the GIL, so the model's Python code keeps running. ``put``
blocks while more than ``queue_bytes`` wait, so memory stays bounded whatever the
number of batches.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
from pathlib import Path
from typing import Any

from parity.errors import RecordError
from parity.records.stats import summarize as summarize_tensor

SHARD_BYTES = 64 << 20
QUEUE_BYTES = 128 << 20
_STOP = object()


def safetensors_dtype(dtype: Any) -> str | None:
    """The safetensors name of a torch dtype, or None when it has none."""
    import torch

    names = {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
        torch.uint8: "U8", torch.bool: "BOOL",
    }
    for attr, name in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"), ("uint16", "U16"),
                       ("uint32", "U32"), ("uint64", "U64")):
        if hasattr(torch, attr):
            names[getattr(torch, attr)] = name
    return names.get(dtype)


def write_safetensors(path: Path, named: list[tuple[str, Any]], metadata: dict[str, str] | None = None) -> int:
    """Write CPU tensors as one safetensors file straight from their buffers (no
    serialisation copy). Returns the file size in bytes."""
    import torch

    header: dict[str, Any] = {}
    offset = 0
    for name, t in named:
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": safetensors_dtype(t.dtype), "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the format aligns the data section to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, t in named:
            if t.numel():
                f.write(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return 8 + len(raw) + offset


class ShardWriter:
    """Writes tensors into ``directory/NNNNN.safetensors`` from a background thread.

    After :meth:`close`, ``blobs[name]`` is ``{"shard", "tensor"}`` (``tensor`` is the
    stored name: another name's for a duplicate, None when the dtype has no safetensors
    name), plus ``hash`` and ``stats`` when the thread summarised it.
    """

    def __init__(self, directory: Path, rel_prefix: str, *, shard_bytes: int = SHARD_BYTES,
                 queue_bytes: int = QUEUE_BYTES) -> None:
        self.directory = directory
        self.rel_prefix = rel_prefix
        self.shard_bytes = shard_bytes
        self.queue_bytes = queue_bytes
        self.blobs: dict[str, dict[str, Any]] = {}
        self.bytes_written = 0
        self.shards: list[str] = []
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._current: list[tuple[str, Any]] = []
        self._current_bytes = 0
        self._seen: dict[tuple[str, str, tuple[int, ...]], str] = {}
        self._thread = threading.Thread(target=self._run, name="parity-shard-writer", daemon=True)
        self._thread.start()

    def put(self, name: str, tensor: Any, summarize: bool | None = None) -> None:
        """Queue a CPU tensor under a unique ``name`` (the writer owns it from now on).

        ``summarize`` None: store as is (the caller hashed and de-duplicated it). False:
        the thread hashes it and stores it once per content (hash, dtype, shape). True:
        the same plus its stats. Blocks while the queue holds more than ``queue_bytes``.
        """
        self.put_many([(name, tensor)], summarize)

    def put_many(self, named: list[tuple[str, Any]], summarize: bool | None = None) -> None:
        """:meth:`put` for several tensors at once: one hand-over to the thread instead
        of one per tensor (each wakes the writer and costs a GIL switch)."""
        items = [(name, t, t.numel() * t.element_size(), summarize) for name, t in named]
        nbytes = sum(item[2] for item in items)
        with self._cond:
            while self._pending > self.queue_bytes and self._error is None:
                self._cond.wait()
            self._raise_if_failed()
            self._pending += nbytes
        self._queue.put(items)

    def close(self) -> dict[str, dict[str, Any]]:
        """Flush, stop the thread and return ``blobs``; re-raises a writer failure."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()
        return self.blobs

    def abort(self) -> None:
        """Stop the thread after a failure elsewhere; its own errors are dropped."""
        self._queue.put(_STOP)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, OSError):
                raise RecordError(f"{self.directory}: cannot write activations ({self._error})",
                                  fix="free disk space or choose another -o path") from self._error
            raise self._error

    def _run(self) -> None:
        try:
            while (items := self._queue.get()) is not _STOP:
                for item in items:
                    self._store(*item)
            self._flush()
        except BaseException as exc:  # handed to the hook thread by put()/close()
            self._error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _store(self, name: str, tensor: Any, nbytes: int, summarize: bool | None) -> None:
        blob: dict[str, Any] = {"shard": None, "tensor": None}
        if summarize is not None:
            stats, digest = summarize_tensor(tensor, summarize)
            blob.update(hash=digest, stats=stats)
            stored = self._seen.setdefault((digest, str(tensor.dtype), tuple(tensor.shape)), name)
            if stored != name:
                blob["tensor"] = stored
        if blob["tensor"] is None and safetensors_dtype(tensor.dtype) is not None:
            blob["tensor"] = name
            self._current.append((name, tensor))
            self._current_bytes += nbytes
        self.blobs[name] = blob
        if self._current_bytes >= self.shard_bytes:
            self._flush()
        with self._cond:
            self._pending -= nbytes
            self._cond.notify_all()

    def _flush(self) -> None:
        if not self._current:
            return
        rel = f"{self.rel_prefix}/{len(self.shards):05d}.safetensors"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bytes_written += write_safetensors(self.directory / Path(rel).name, self._current)
        self.shards.append(rel)
        for name, _ in self._current:
            self.blobs[name]["shard"] = rel
        self._current, self._current_bytes = [], 0

    def location(self, name: str) -> tuple[str | None, str | None]:
        """(shard relpath, stored tensor name) of a put name, after close()."""
        blob = self.blobs.get(name)
        if blob is None or blob["tensor"] is None:
            return None, None
        return self.blobs[blob["tensor"]]["shard"], blob["tensor"]
