"""The size limit of a record (``parity record --max-size``) and its estimate.

Every byte a record is about to hold is charged to a :class:`SizeBudget` *before* it is
handed to the writer: layer tensors and samples (from the capture hooks), stage tensors
and, per batch, the JSON that describes the batch. A charge that would cross the limit
raises :class:`RecordSizeError` at once, so a record never grows past its limit; after
each batch the size of the whole record is projected from the batches so far, and the
record stops as soon as the projection crosses the limit (after the first batch, the
estimate is that batch's bytes times the number of batches).

Charges are upper bounds of what reaches the disk, mirroring the shard writer: a layer
tensor is charged its bytes plus its safetensors header entry; each shard 4 KiB; and a
shard that outgrows one chunk, when it does, the header room the writer then reserves
(twice its header projected to the full shard: at most 16 times the header so far,
and at least 16 KiB).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from parity._text import format_size, size_of
from parity.errors import RecordError
from parity.records.writer import CHUNK_BYTES

#: The default limit is the smaller of this and the free space minus DEFAULT_FREE_MARGIN.
DEFAULT_MAX_SIZE = 20 * 10**9
DEFAULT_FREE_MARGIN = 10**9
#: assets.json, env.json, manifest.json, inputs.json: written once per record.
FIXED_BYTES = 512 << 10
SHARD_ALLOWANCE = 4 << 10
_MIN_RESERVE = 16 << 10


class RecordSizeError(RecordError):
    """A record would grow past its size limit (``--max-size``)."""


def parse_size(text: str) -> int:
    """Bytes from ``500M``, ``2G``, ``1.5GB``, ``700MiB`` or a plain number of bytes
    (K/M/G/T are powers of 1000; Ki/Mi/Gi/Ti powers of 1024)."""
    size = size_of(text)
    if size is None:
        raise RecordError(f"--max-size {text}: not a size",
                          fix="give a size such as 500M, 2G or 1.5GB")
    if size <= 0:
        raise RecordError(f"--max-size {text}: must be more than 0 bytes", fix="give a size such as 500M or 2G")
    return size


def default_max_size(where: Path | None) -> tuple[int, str]:
    """(limit, how it was chosen) for a record written under the folder ``where`` (None:
    a place with no free space to ask, such as object storage)."""
    if where is None:
        return DEFAULT_MAX_SIZE, f"the default --max-size, {format_size(DEFAULT_MAX_SIZE)}"
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return DEFAULT_MAX_SIZE, f"the default --max-size, {format_size(DEFAULT_MAX_SIZE)}"
    limit = max(0, min(DEFAULT_MAX_SIZE, free - DEFAULT_FREE_MARGIN))
    return limit, (f"the default --max-size, {format_size(limit)}: the smaller of "
                   f"{format_size(DEFAULT_MAX_SIZE)} and the free space at {where} "
                   f"({format_size(free)}) minus {format_size(DEFAULT_FREE_MARGIN)}")


class SizeBudget:
    """Bytes charged to one record against ``limit`` (see the module docstring)."""

    def __init__(self, limit: int, origin: str, out: Path, capture: str, batches: int,
                 shard_bytes: int) -> None:
        self.limit = limit
        self.origin = origin  # "--max-size 2 GB" or how the default was chosen
        self.out = out
        self.capture = capture
        self.batches = batches
        self.shard_bytes = max(1, shard_bytes)
        # As the writer sizes its chunks and the header room of a streamed shard.
        self._chunk = _round_up(max(4096, min(CHUNK_BYTES, self.shard_bytes)), 4096)
        self._reserve_factor = 2 * max(1, self.shard_bytes // self._chunk)
        self.used = FIXED_BYTES
        #: what the record holds so far, without the upper-bound allowances (for progress)
        self.written = 0
        self.batches_done = 0
        self.json_per_batch = 0
        self._shard_fill = -1  # data bytes in the writer's current shard; -1: none yet
        self._shard_header = 0  # header entry bytes in the writer's current shard
        self._layer_bytes = 0
        self._reserved = 0  # header room charged for streamed shards

    def charge(self, nbytes: int, written: int | None = None) -> None:
        """Count ``nbytes`` about to be stored (``written`` of them without allowances);
        RecordSizeError when they do not fit."""
        self.used += nbytes
        self.written += nbytes if written is None else written
        if self.used > self.limit:
            self._refuse(self.used, "")

    def charge_layer_tensor(self, nbytes: int, header_entry: int) -> None:
        """A tensor for the activation shards (data plus its share of header room)."""
        extra = 0
        if self._shard_fill < 0 or self._shard_fill >= self.shard_bytes:  # the writer starts a shard
            self._shard_fill, self._shard_header, extra = 0, 0, SHARD_ALLOWANCE
        self._shard_header += header_entry
        if self._shard_fill < self._chunk <= self._shard_fill + nbytes:  # the shard starts streaming
            reserve = _round_up(max(_MIN_RESERVE, self._reserve_factor * self._shard_header + 8), 4096)
            self._reserved += reserve
            extra += reserve
        self._shard_fill += nbytes
        self._layer_bytes += nbytes
        self.charge(nbytes + header_entry + extra, nbytes + header_entry)

    def end_batch(self) -> int:
        """After a batch: the projected size of the whole record (raises when over the limit)."""
        self.charge(self.json_per_batch)
        self.batches_done += 1
        # Per batch, what the batches so far wrote, plus header room at the rate reserved so far.
        per_batch = self.written / self.batches_done
        per_batch *= 1 + self._reserved / max(self._layer_bytes, 1)
        projected = int(self.used + per_batch * (self.batches - self.batches_done))
        if projected > self.limit:
            self._refuse(projected, f" ({format_size(per_batch)} per batch x {self.batches} batches)")
        return projected

    def _refuse(self, size: int, detail: str) -> None:
        ways = ["pass a larger --max-size", "record fewer inputs"]
        if self.capture == "full":
            ways.insert(0, "use --capture stats (per-layer statistics and samples, a few kB per layer)")
        elif self.capture == "targeted":  # --layers: full tensors for the selected modules
            ways.insert(0, "select fewer modules with --layers (one block is usually enough)")
        limit = f"the size limit {format_size(self.limit)} ({self.origin})"
        if detail:  # a projection after a batch
            what = (f"would take about {format_size(size)}{detail}, more than {limit}; "
                    f"stopped after batch {self.batches_done} of {self.batches}")
        else:  # a charge inside a batch
            what = (f"would take more than {limit}: stopped during batch {self.batches_done + 1} "
                    f"of {self.batches}, before writing past it")
        raise RecordSizeError(f"{self.out}: the record {what}; nothing was kept", fix=", or ".join(ways))


def header_entry_bytes(name: str, ndim: int) -> int:
    """An upper bound of a tensor's safetensors header entry (as the shard writer counts it)."""
    return len(name) + 62 + 21 * (ndim + 2)


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to
