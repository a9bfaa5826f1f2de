"""The record store seam: the local store's round trip and atomic commit, the URL schemes
no store serves yet, and a second backend (an in-memory fake defined here, subclassing
the base classes) that records and verifies through the public record()/verify() path."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import pytest
import torch

from parity.errors import RecordError
from parity.records import read_record, record
from parity.records.format import MANIFEST, finalize_manifest
from parity.records.store import (
    FileInfo,
    LocalStore,
    RecordReader,
    RecordStore,
    RecordWriter,
    location_text,
    register_store,
    store_for,
    unregister_store,
)

TARGET = '''
import torch
from torch import nn
from parity.target import Pipeline


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    return Pipeline(model=model, preprocess=lambda rows: torch.tensor(rows, dtype=torch.float32),
                    postprocess=lambda out: out.softmax(-1), batch_size=2, name="store")
'''
INPUTS = [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 2.0, 1.0], [3.0, 1.0, -2.0, 0.5]]


def _write_members(w: RecordWriter) -> dict[str, FileInfo]:
    w.write_json("a.json", {"x": 1})
    with w.open("sub/streamed.bin") as f:
        for i in range(3):
            f.write(bytes([i]) * 1000)
    spool = w.spool("activations")
    spool.mkdir(parents=True, exist_ok=True)
    (spool / "00000.safetensors").write_bytes(b"spooled bytes")
    w.spooled("activations/00000.safetensors")
    return w.members()


# -------------------------------------------------------------------- the local store


def test_local_round_trip_lists_sizes_hashes_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    store = store_for(out)
    assert isinstance(store, LocalStore)
    with store.create(out) as w:
        members = _write_members(w)
        assert not out.exists()  # nothing visible before commit
        w.commit({"files": members})
    assert members["sub/streamed.bin"]["size"] == 3000
    reader = store.open_reader(out)
    assert reader.list() == sorted([MANIFEST, "a.json", "activations/00000.safetensors", "sub/streamed.bin"])
    assert json.loads(reader.read_bytes("a.json")) == {"x": 1}
    assert reader.read_bytes("activations/00000.safetensors") == b"spooled bytes"
    assert json.loads(reader.read_bytes(MANIFEST))["files"] == members
    reader.verify(members)  # sizes and hashes match
    (out / "sub" / "streamed.bin").write_bytes(b"\x00" * 3000)  # same size, other bytes
    with pytest.raises(RecordError, match=r"streamed\.bin: sha256 does not match"):
        reader.verify(members)
    assert store.is_record(out) and not store.is_record(tmp_path)


def test_an_exception_inside_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    with pytest.raises(KeyError), LocalStore().create(out) as w:
        _write_members(w)
        raise KeyError("the model failed")
    assert list(tmp_path.iterdir()) == []  # no record, no temporary folder


def test_an_exception_inside_keeps_the_old_record(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    with LocalStore().create(out) as w:
        w.write_bytes("old.txt", b"old")
        w.commit({"files": w.members()})
    with pytest.raises(KeyError), LocalStore().create(out, overwrite=True) as w:
        w.write_bytes("new.txt", b"new")
        raise KeyError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "old.txt"]


def test_leaving_without_commit_is_a_bug_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="without commit"), LocalStore().create(tmp_path / "rec") as w:
        w.write_bytes("a.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_names_outside_the_record_and_files_around_the_writer_are_refused(tmp_path: Path) -> None:
    with LocalStore().create(tmp_path / "rec") as w:
        for bad in ("../x", "/etc/x", "a//b", "./a", MANIFEST):
            with pytest.raises(ValueError):
                w.write_bytes(bad, b"x")
        (w.spool("activations")).mkdir()
        (w.spool("activations") / "stray.bin").write_bytes(b"x")  # never handed over with spooled()
        with pytest.raises(RuntimeError, match="around the record writer"):
            w.commit({"files": w.members()})
    assert list(tmp_path.iterdir()) == []


def test_record_and_read_record_go_through_the_store(tmp_path: Path) -> None:
    """A real record's manifest lists exactly what its writer wrote, shards included."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).eval()
    out = tmp_path / "rec"
    from parity.target import Pipeline

    record(Pipeline(model=model, batch_size=2), [torch.randn(4) for _ in range(4)], out=out, capture="full",
           snapshot_env=False)
    rec = read_record(f"file://{out}")
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(rec.manifest["files"]) == [f for f in on_disk if f != MANIFEST]
    assert "activations/00000.safetensors" in rec.manifest["files"] and rec.location == str(out)


# -------------------------------------------------------------------- schemes


@pytest.fixture
def no_fsspec(monkeypatch: pytest.MonkeyPatch) -> None:
    """This interpreter as without the ``parity[s3]`` extra: ``import fsspec`` fails."""
    monkeypatch.setitem(sys.modules, "fsspec", None)


@pytest.mark.parametrize("url", ["s3://bucket/golden", "gs://bucket/golden", Path("s3://bucket/golden")])
def test_object_storage_without_the_extra_is_refused_in_one_line(url: Any, no_fsspec: None) -> None:
    with pytest.raises(RecordError) as info:
        store_for(url).open_reader(url)
    message = str(info.value)
    assert "\n" not in message and "pip install 'parity[s3]'" in message
    assert location_text(url) in message


def test_verify_of_an_s3_record_without_the_extra_exits_2_in_one_line(run_cli, no_fsspec: None) -> None:
    code, out, err = run_cli("verify", "s3://bucket/golden", "model.py:build")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "s3://bucket/golden" in err and "parity[s3]" in err


def test_record_to_s3_without_the_extra_exits_2_in_one_line(run_cli, tmp_path: Path, no_fsspec: None) -> None:
    code, out, err = run_cli("record", tmp_path / "missing.py:build", "-o", "s3://bucket/golden")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "s3://bucket/golden" in err and "parity[s3]" in err and "missing.py" not in err


def test_record_to_s3_without_the_extra_fails_before_the_model_loads(tmp_path: Path, no_fsspec: None) -> None:
    with pytest.raises(RecordError, match=r"s3://bucket/golden: object storage needs fsspec"):
        record(str(tmp_path / "missing.py:build"), out="s3://bucket/golden")


def test_an_unknown_scheme_is_refused_in_one_line() -> None:
    with pytest.raises(RecordError, match=r"nope://x/y: no record store for nope:// locations"):
        store_for("nope://x/y")


# -------------------------------------------------------------------- a second backend


class MemoryStore(RecordStore):
    """Records as objects in a dict: what an object store backend does, in memory.
    Members stream into a pending dict; the manifest goes last, and the record becomes
    visible in one assignment. Spooled shards are taken into memory and their local
    file removed, as soon as the shard writer finishes each one."""

    objects: ClassVar[dict[str, dict[str, bytes]]] = {}
    spools: ClassVar[list[Path]] = []

    @staticmethod
    def key(location: Any) -> str:
        return location_text(location).removeprefix("mem://").strip("/")

    def open_reader(self, location: Any) -> MemoryReader:
        key = self.key(location)
        if key not in self.objects:
            raise RecordError(f"mem://{key}: no such record", fix="record it first")
        return MemoryReader(f"mem://{key}", self.objects[key])

    def create(self, location: Any, *, overwrite: bool = False) -> MemoryWriter:
        return MemoryWriter(self.key(location), overwrite)


class MemoryReader(RecordReader):
    def __init__(self, location: str, objects: dict[str, bytes]) -> None:
        super().__init__(location)
        self.objects = objects

    def list(self) -> list[str]:
        return sorted(self.objects)

    def size(self, name: str) -> int:
        return len(self.objects[name])

    def open(self, name: str) -> IO[bytes]:
        if name not in self.objects:
            raise FileNotFoundError(name)
        return io.BytesIO(self.objects[name])


class _Upload(io.BytesIO):
    def __init__(self, done: Any) -> None:
        super().__init__()
        self.done = done

    def close(self) -> None:
        if not self.closed:
            self.done(self.getvalue())
        super().close()


class MemoryWriter(RecordWriter):
    def __init__(self, key: str, overwrite: bool) -> None:
        super().__init__(f"mem://{key}")
        self.key, self.overwrite = key, overwrite
        self.pending: dict[str, bytes] = {}
        self.folder: Path | None = None

    def _begin(self) -> None:
        if self.key in MemoryStore.objects and not self.overwrite:
            raise RecordError(f"{self.location}: already exists", fix="pass overwrite")
        self.folder = Path(tempfile.mkdtemp(prefix="parity-mem-spool-"))
        MemoryStore.spools.append(self.folder)

    def _open_member(self, name: str) -> IO[bytes]:
        return _Upload(lambda data: self.pending.__setitem__(name, data))

    def spool(self, prefix: str) -> Path:
        assert self.folder is not None
        return self.folder / prefix

    def spooled(self, name: str) -> None:
        super().spooled(name)
        assert self.folder is not None
        path = self.folder / name
        self.pending[name] = path.read_bytes()  # "uploaded" while the model runs
        path.unlink()

    def _spooled_info(self, name: str) -> FileInfo:
        import hashlib

        data = self.pending[name]
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def _publish(self, manifest: bytes) -> None:
        MemoryStore.objects[self.key] = {**self.pending, MANIFEST: manifest}  # visible at once, complete
        self._drop_spool()

    def _discard(self) -> None:
        self.pending.clear()
        self._drop_spool()

    def _drop_spool(self) -> None:
        import shutil

        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def memory_store() -> Iterator[type[MemoryStore]]:
    MemoryStore.objects, MemoryStore.spools = {}, []
    register_store("mem", MemoryStore)
    try:
        yield MemoryStore
    finally:
        unregister_store("mem")


@pytest.fixture
def target(tmp_path: Path) -> str:
    (tmp_path / "store_model.py").write_text(TARGET)
    return f"{tmp_path / 'store_model.py'}:build"


@pytest.mark.parametrize("capture", ["stats", "full"])
def test_a_fake_backend_records_and_verifies_through_the_public_path(memory_store: type[MemoryStore], target: str,
                                                                     capture: str) -> None:
    from parity.comparison import compare, verify

    result = record(target, INPUTS, out="mem://golden", capture=capture, snapshot_env=False)
    objects = memory_store.objects["golden"]
    assert set(objects) == {MANIFEST, *result.manifest["files"]}
    if capture == "full":
        assert "activations/00000.safetensors" in objects  # the shard writer's files reached the store
    assert all(not any(p.rglob("*.safetensors")) for p in memory_store.spools)  # spools emptied
    rec = read_record("mem://golden")
    assert rec.location == "mem://golden" and rec.layers
    checked = verify("mem://golden", target)
    assert checked.verdict in ("PASS", "PASS-with-warnings"), checked.reason
    assert checked.a["record"] == "mem://golden"
    record(target, INPUTS, out="mem://again", capture=capture, snapshot_env=False)
    assert compare("mem://golden", "mem://again").verdict in ("PASS", "PASS-with-warnings")


def test_a_fake_backend_refuses_a_corrupted_object_naming_it(memory_store: type[MemoryStore], target: str) -> None:
    record(target, INPUTS, out="mem://golden", capture="full", snapshot_env=False)
    objects = memory_store.objects["golden"]
    shard = bytearray(objects["activations/00000.safetensors"])
    shard[-1] ^= 0x01
    objects["activations/00000.safetensors"] = bytes(shard)
    with pytest.raises(RecordError, match=r"mem://golden/activations/00000\.safetensors: sha256 does not match"):
        read_record("mem://golden")


def test_a_fake_backend_shows_nothing_of_an_interrupted_record(memory_store: type[MemoryStore],
                                                               tmp_path: Path) -> None:
    from parity.target import Pipeline

    def failing(rows: list[Any]) -> Any:
        if len(failing.calls) == 1:  # type: ignore[attr-defined]
            raise RuntimeError("killed on batch 1")
        failing.calls.append(1)  # type: ignore[attr-defined]
        return torch.tensor(rows, dtype=torch.float32)

    failing.calls = []  # type: ignore[attr-defined]
    model = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    with pytest.raises(Exception, match="killed on batch 1"):
        record(Pipeline(model=model, preprocess=failing, batch_size=2), INPUTS, out="mem://broken", capture="full",
               snapshot_env=False)
    assert memory_store.objects == {}
    assert all(not p.exists() for p in memory_store.spools)
    assert not os.listdir(tmp_path)  # nothing local either


def test_finalize_manifest_seals_a_local_folder_in_place(tmp_path: Path) -> None:
    """Hand-made records (and tests) seal a folder they wrote themselves."""
    (tmp_path / "a.json").write_text("{}")
    manifest = finalize_manifest(tmp_path, {"capture": "outputs"})
    assert set(manifest["files"]) == {"a.json"}
    LocalStore().open_reader(tmp_path).verify(manifest["files"])
