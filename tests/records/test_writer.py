"""The background shard writer: size-bounded shards, bounded queue, dedup, failures."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from parity.errors import RecordError
from parity.records.writer import ShardWriter, write_safetensors


class TrackingWriter(ShardWriter):
    """Records the most bytes ever waiting in the queue, and slows the disk down."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.max_pending = 0
        self.gate = threading.Event()
        super().__init__(*args, **kwargs)

    def put(self, name: str, tensor: Any) -> None:
        super().put(name, tensor)
        with self._cond:
            self.max_pending = max(self.max_pending, self._pending)

    def _store(self, *args: Any) -> None:
        self.gate.wait(0.002)  # a slow disk: the producer must wait, not pile up
        super()._store(*args)


def test_shards_are_size_bounded_and_readable(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path / "activations", "activations", shard_bytes=100_000)
    tensors = {f"t{i}": torch.full((10_000,), float(i)) for i in range(12)}  # 40 kB each
    for name, t in tensors.items():
        writer.put(name, t.clone())
    writer.close()
    files = sorted((tmp_path / "activations").iterdir())
    assert len(files) == 4 and all(f.stat().st_size <= 100_000 + 40_000 + 4096 for f in files)
    for name, t in tensors.items():
        shard, stored = writer.location(name)
        assert torch.equal(load_file(str(tmp_path / shard))[stored], t)


def test_queue_is_bounded_so_memory_does_not_grow(tmp_path: Path) -> None:
    writer = TrackingWriter(tmp_path / "a", "a", shard_bytes=1 << 20, queue_bytes=200_000)
    item = 40_000
    for i in range(60):  # 2.4 MB in total through a 200 kB queue
        writer.put(f"t{i}", torch.randn(item // 4))
    writer.close()
    assert writer.max_pending <= 200_000 + item
    assert writer.bytes_written >= 60 * item


def test_write_failure_becomes_a_record_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a"
    blocker.write_text("a file where the folder should be")
    writer = ShardWriter(blocker, "a", shard_bytes=10)
    writer.put("t", torch.ones(100))
    with pytest.raises(RecordError, match="cannot write activations"):
        writer.close()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.uint8])
def test_own_safetensors_serialiser_round_trips(tmp_path: Path, dtype: torch.dtype) -> None:
    t = (torch.arange(24).reshape(2, 3, 4) % 3).to(dtype)
    write_safetensors(tmp_path / "x.safetensors", [("x", t), ("empty", torch.zeros(0, dtype=dtype))])
    back = load_file(str(tmp_path / "x.safetensors"))
    assert torch.equal(back["x"], t) and back["empty"].shape == (0,)
