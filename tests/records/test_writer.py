"""The background shard writer: size-bounded shards, chunked streaming writes, bounded
memory, copies taken at put time, failures."""

from __future__ import annotations

import errno
import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from parity.errors import RecordError
from parity.records import writer as writer_module
from parity.records.writer import ShardWriter, write_safetensors

MIXED = {
    "f32": torch.randn(1000),
    "big": torch.randn(300, 300),               # 360 kB: spans several 64 kB chunks
    "transposed": torch.randn(40, 30).t(),      # not contiguous
    "half": torch.randn(77).half(),             # odd byte counts shift later offsets
    "bf16": torch.randn(5, 3).bfloat16(),
    "ids": torch.arange(12345),
    "mask": torch.rand(101) > 0.5,
    "empty": torch.zeros(0, 4),
    "scalar": torch.tensor(3.5),
}


@pytest.fixture(params=["thread", "direct", "inline"])
def mode(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, bool]:
    """Every way of writing: a writer thread with buffered writes, a writer thread with
    O_DIRECT (where this file system takes it), or the caller's thread."""
    if request.param == "direct" and not writer_module._direct_io(tmp_path):
        pytest.skip("this file system does not take O_DIRECT writes")
    return {"thread": {"inline": False, "direct": False}, "direct": {"inline": False, "direct": True},
            "inline": {"inline": True, "direct": False}}[request.param]


def _read_all(directory: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(directory.iterdir()):
        out.update(load_file(str(f)))
    return out


def test_shards_are_size_bounded_and_readable(tmp_path: Path, mode: dict[str, bool]) -> None:
    writer = ShardWriter(tmp_path / "activations", "activations", shard_bytes=100_000, **mode)
    tensors = {f"t{i}": torch.full((10_000,), float(i)) for i in range(12)}  # 40 kB each
    for name, t in tensors.items():
        writer.put(name, t)
    writer.close()
    files = sorted((tmp_path / "activations").iterdir())
    assert len(files) == 4 and all(f.stat().st_size <= 100_000 + 40_000 + writer_module._MIN_RESERVE for f in files)
    assert writer.bytes_written == sum(f.stat().st_size for f in files)
    for name, t in tensors.items():
        shard, stored = writer.location(name)
        assert shard is not None and torch.equal(load_file(str(tmp_path / shard))[stored], t)


def test_every_dtype_and_layout_round_trips_across_chunks(tmp_path: Path, mode: dict[str, bool]) -> None:
    writer = ShardWriter(tmp_path / "a", "a", shard_bytes=1 << 20, chunk_bytes=64 << 10, **mode)
    writer.put_many(list(MIXED.items()))
    writer.close()
    back = _read_all(tmp_path / "a")
    assert set(back) == set(MIXED)
    for name, t in MIXED.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name


def test_streamed_shard_reserves_its_header_and_is_truncated_exactly(tmp_path: Path, mode: dict[str, bool]) -> None:
    writer = ShardWriter(tmp_path / "a", "a", shard_bytes=1 << 20, chunk_bytes=64 << 10, **mode)
    writer.put("big", MIXED["big"])
    writer.put("tail", torch.ones(3))  # ends the data at an unaligned length
    writer.close()
    (shard,) = (tmp_path / "a").iterdir()
    raw = shard.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 4096 == 0  # the data starts on the page after the reserved header room
    header = json.loads(raw[8:8 + n])  # padded with spaces, which JSON allows
    assert len(raw) == 8 + n + header["tail"]["data_offsets"][1]


def test_values_are_copied_when_put(tmp_path: Path, mode: dict[str, bool]) -> None:
    writer = ShardWriter(tmp_path / "a", "a", chunk_bytes=64 << 10, **mode)
    writer.put("small", torch.zeros(10))  # inline: the next put goes straight to the file
    t = torch.zeros(50_000)
    writer.put("before", t)
    t.add_(1)  # an in-place op after the hook must not reach the record
    writer.close()
    assert torch.equal(_read_all(tmp_path / "a")["before"], torch.zeros(50_000))


def test_accelerator_style_tensors_go_through_chunks_inline(tmp_path: Path, monkeypatch) -> None:
    """Inline writes go straight from CPU tensors; anything else is copied into a chunk.
    (A CUDA tensor cannot be faked here, so the chunk path is checked on the streamed
    shard with a tensor larger than a chunk, which still has to be split.)"""
    writer = ShardWriter(tmp_path / "a", "a", shard_bytes=1 << 20, chunk_bytes=16 << 10, inline=True)
    writer.put("first", torch.ones(100))
    writer.put("big", MIXED["big"])
    writer.put("after", torch.arange(10.0))
    writer.close()
    back = _read_all(tmp_path / "a")
    assert torch.equal(back["big"], MIXED["big"]) and torch.equal(back["after"], torch.arange(10.0))


class SlowDisk(ShardWriter):
    def _do(self, item: tuple[Any, ...], files: dict[int, Any]) -> None:
        time.sleep(0.002)
        super()._do(item, files)


def test_memory_is_bounded_whatever_the_number_of_tensors(tmp_path: Path, mode: dict[str, bool]) -> None:
    writer = SlowDisk(tmp_path / "a", "a", shard_bytes=1 << 20, chunk_bytes=64 << 10, queue_bytes=256 << 10,
                      **mode)
    item = 40_000
    for i in range(60):  # 2.4 MB through four 64 kB chunks
        writer.put(f"t{i}", torch.randn(item // 4))
    writer.close()
    assert writer.peak_chunks <= writer.max_chunks == 4
    assert writer.bytes_written >= 60 * item and len(_read_all(tmp_path / "a")) == 60


def test_header_room_running_out_starts_a_new_shard(tmp_path: Path, mode: dict[str, bool]) -> None:
    writer = ShardWriter(tmp_path / "a", "a", shard_bytes=4 << 20, chunk_bytes=16 << 10, **mode)
    writer.put("first", torch.randn(8192))  # streams at once, reserving room for a small header
    names = [f"layer.{i}.with.a.long.module.path#0/out/{i}" for i in range(2000)]
    for name in names:
        writer.put(name, torch.ones(2))
    writer.close()
    assert len(writer.shards) >= 2
    back = _read_all(tmp_path / "a")
    assert set(back) == {"first", *names}


def test_write_failure_becomes_a_record_error(tmp_path: Path, mode: dict[str, bool]) -> None:
    blocker = tmp_path / "a"
    blocker.write_text("a file where the folder should be")
    writer = ShardWriter(blocker, "a", shard_bytes=10, **mode)
    with pytest.raises(RecordError, match="cannot write activations"):
        writer.put("t", torch.ones(100))  # inline, the write (and its failure) happens here
        writer.close()
    writer.abort()


def test_failure_while_streaming_reaches_the_producer(tmp_path: Path, mode: dict[str, bool]) -> None:
    blocker = tmp_path / "a"
    blocker.write_text("a file where the folder should be")
    writer = ShardWriter(blocker, "a", chunk_bytes=16 << 10, queue_bytes=32 << 10, **mode)
    with pytest.raises(RecordError, match="cannot write activations"):
        for i in range(200):  # far more than the queue holds: put() must raise, not hang
            writer.put(f"t{i}", torch.randn(8192))
        writer.close()
    writer.abort()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.uint8])
def test_own_safetensors_serialiser_round_trips(tmp_path: Path, dtype: torch.dtype) -> None:
    t = (torch.arange(24).reshape(2, 3, 4) % 3).to(dtype)
    write_safetensors(tmp_path / "x.safetensors", [("x", t), ("empty", torch.zeros(0, dtype=dtype))])
    back = load_file(str(tmp_path / "x.safetensors"))
    assert torch.equal(back["x"], t) and back["empty"].shape == (0,)


def test_direct_and_buffered_writes_give_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not writer_module._direct_io(tmp_path):
        pytest.skip("this file system does not take O_DIRECT writes")
    flags: list[int] = []
    real_open = writer_module.os.open

    def spy(path: Any, flag: int, *args: Any) -> int:
        flags.append(flag)
        return real_open(path, flag, *args)

    monkeypatch.setattr(writer_module.os, "open", spy)
    tensors = {f"t{i}": torch.randn(10_000 + 37 * i) for i in range(40)}  # streamed shards, odd tails
    for name, direct in (("direct", True), ("buffered", False)):
        writer = ShardWriter(tmp_path / name, name, shard_bytes=1 << 20, chunk_bytes=64 << 10,
                             inline=False, direct=direct)
        writer.put_many(list(tensors.items()))
        writer.close()
    assert any(f & writer_module.os.O_DIRECT for f in flags)
    direct_files = sorted((tmp_path / "direct").iterdir())
    assert [f.name for f in direct_files] == [f.name for f in sorted((tmp_path / "buffered").iterdir())]
    for f in direct_files:
        assert f.read_bytes() == (tmp_path / "buffered" / f.name).read_bytes(), f.name
    got = _read_all(tmp_path / "direct")
    assert all(torch.equal(got[k], v) for k, v in tensors.items())


def test_default_mode_is_a_direct_writer_thread_where_the_disk_allows(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "_spare_core", lambda: False)
    monkeypatch.setattr(writer_module, "_direct_io", lambda directory: True)
    w = ShardWriter(tmp_path / "a", "a")
    assert (w.direct, w.inline) == (True, False)  # O_DIRECT costs the model next to no CPU
    w.close()
    monkeypatch.setattr(writer_module, "_direct_io", lambda directory: False)
    w = ShardWriter(tmp_path / "b", "b")
    assert (w.direct, w.inline) == (False, True)  # buffered, with no spare core: the caller writes
    w.close()


def test_direct_io_probe_says_no_without_the_flag_or_a_writable_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert not writer_module._direct_io(tmp_path / "missing" / "deeper")
    writer_module._direct_io(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, whatever the answer
    monkeypatch.delattr(writer_module.os, "O_DIRECT", raising=False)
    assert not writer_module._direct_io(tmp_path)


def test_direct_write_refused_by_the_device_falls_back_to_buffered(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if not writer_module._direct_io(tmp_path):
        pytest.skip("this file system does not take O_DIRECT writes")
    real = writer_module._pwrite_all
    refused: list[int] = []

    def picky(fd: int, data: memoryview, offset: int) -> None:
        if fd_flags(fd) & writer_module.os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, data, offset)

    def fd_flags(fd: int) -> int:
        import fcntl

        return fcntl.fcntl(fd, fcntl.F_GETFL)

    monkeypatch.setattr(writer_module, "_pwrite_all", picky)
    tensors = {f"t{i}": torch.randn(20_000) for i in range(12)}
    writer = ShardWriter(tmp_path / "a", "a", shard_bytes=1 << 20, chunk_bytes=64 << 10, inline=False, direct=True)
    writer.put_many(list(tensors.items()))
    writer.close()
    assert refused  # it tried, was refused, and went on buffered
    got = _read_all(tmp_path / "a")
    assert all(torch.equal(got[k], v) for k, v in tensors.items())
