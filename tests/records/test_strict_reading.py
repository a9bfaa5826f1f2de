"""read_record refuses, at open time and naming the file, what a hostile or damaged
record could use: links, special files, paths outside the record, forged headers,
git-LFS pointers, JSON that does not fit the schema, a manifest changed after writing."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch

from parity.errors import LfsPointerError, RecordError
from parity.records import read_record, record
from parity.records.format import MANIFEST, finalize_manifest, manifest_digest
from parity.records.validate import Invalid, read_header
from parity.target import Pipeline

SHARD = "activations/00000.safetensors"
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1234\n"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).eval()
    out = tmp_path_factory.mktemp("strict") / "golden"
    record(Pipeline(model=model, example_inputs=[torch.randn(4) for _ in range(4)], batch_size=2), out=out,
           capture="full", snapshot_env=False)
    return out


@pytest.fixture
def rec(golden: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "rec"
    shutil.copytree(golden, copy)
    return copy


def rehash(root: Path) -> None:
    """Rewrite the manifest so every hash and size matches again (what a forger does)."""
    manifest = json.loads((root / MANIFEST).read_text())
    finalize_manifest(root, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})


def _refused(root: Path, *words: str) -> str:
    with pytest.raises(RecordError) as info:
        read_record(root)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def test_untouched_record_opens_and_knows_its_weights(rec: Path) -> None:
    opened = read_record(rec)
    assert opened.weights_known and set(opened.headers) == {SHARD, "stages.safetensors"}


def test_symlinked_shard_with_matching_hash_is_refused(rec: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.safetensors"
    shutil.copy(rec / SHARD, outside)  # same bytes: size and sha256 still match
    (rec / SHARD).unlink()
    (rec / SHARD).symlink_to(outside)
    _refused(rec, "00000.safetensors", "symbolic link")


def test_symlinked_folder_is_refused(rec: Path, tmp_path: Path) -> None:
    shutil.move(rec / "activations", tmp_path / "elsewhere")
    (rec / "activations").symlink_to(tmp_path / "elsewhere")
    _refused(rec, "activations", "symbolic link")


def test_unlisted_symlink_and_fifo_are_refused(rec: Path) -> None:
    (rec / "notes.txt").symlink_to("/etc/passwd")
    _refused(rec, "notes.txt", "symbolic link")
    (rec / "notes.txt").unlink()
    os.mkfifo(rec / "pipe")
    _refused(rec, "pipe", "not a regular file")


@pytest.mark.parametrize("rel", ["../outside.json", "/etc/passwd", "activations/../env.json", "a//b", "./env.json",
                                 "env.json\0x", "", MANIFEST])
def test_manifest_paths_outside_the_record_are_refused(rec: Path, rel: str) -> None:
    manifest = json.loads((rec / MANIFEST).read_text())
    manifest["files"][rel] = {"sha256": "0" * 64, "size": 1}
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (rec / MANIFEST).write_text(json.dumps(manifest))
    _refused(rec, "manifest.json", "outside the record")


def test_manifest_changed_after_writing_is_refused(rec: Path) -> None:
    manifest = json.loads((rec / MANIFEST).read_text())
    manifest["seed"] = 1  # a plausible value: only the digest tells
    (rec / MANIFEST).write_text(json.dumps(manifest))
    _refused(rec, "manifest.json", "changed after it was written")


def test_git_lfs_pointers_are_named(rec: Path) -> None:
    (rec / SHARD).write_bytes(LFS)
    rehash(rec)
    with pytest.raises(LfsPointerError, match=r"00000\.safetensors is a git-LFS pointer.*git lfs pull"):
        read_record(rec)
    (rec / MANIFEST).write_bytes(LFS)
    with pytest.raises(LfsPointerError, match=r"manifest\.json is a git-LFS pointer"):
        read_record(rec)


def _forge(path: Path, edit) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    new = json.dumps(edit(header)).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + data)


def _first(h: dict) -> dict:
    return h[sorted(k for k in h if k != "__metadata__")[0]]


@pytest.mark.parametrize("edit, words", [
    (lambda h: {**h, **{k: {**v, "shape": [2**40, 2**40]} for k, v in list(h.items())[:1]}}, "x F32 is"),
    (lambda h: [_first(h).update(data_offsets=[0, 10**9]), h][1], "outside the data section"),
    (lambda h: [_first(h).update(dtype=None), h][1], "is not a safetensors dtype"),
    (lambda h: [_first(h).update(dtype="C128"), h][1], "is not a safetensors dtype"),
])
def test_forged_shard_headers_are_refused(rec: Path, edit, words: str) -> None:
    _forge(rec / SHARD, edit)
    rehash(rec)
    _refused(rec, "00000.safetensors", words)


def test_overlapping_ranges_are_refused(rec: Path) -> None:
    def overlap(h: dict) -> dict:
        names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
        a, b = h[names[0]], h[names[1]]
        size = b["data_offsets"][1] - b["data_offsets"][0]
        b["data_offsets"] = [a["data_offsets"][0], a["data_offsets"][0] + size]
        return h
    _forge(rec / SHARD, overlap)
    rehash(rec)
    _refused(rec, "00000.safetensors", "overlaps")


def test_header_length_beyond_the_file_is_refused(rec: Path) -> None:
    raw = (rec / SHARD).read_bytes()
    (rec / SHARD).write_bytes(struct.pack("<Q", 2**62) + raw[8:])
    rehash(rec)
    _refused(rec, "00000.safetensors", "header length 4611686018427387904")


def test_layer_entry_pointing_past_its_stored_tensor_is_refused(rec: Path) -> None:
    layers = json.loads((rec / "layers.json").read_text())
    layers[0]["shape"] = [999, 999]  # the stored tensor is smaller: reads would index past it
    (rec / "layers.json").write_text(json.dumps(layers))
    rehash(rec)
    _refused(rec, "layers.json", "[0]", "stored shape")


def test_assets_without_weights_are_weights_unknown(rec: Path) -> None:
    assets = json.loads((rec / "assets.json").read_text())
    (rec / "assets.json").write_text(json.dumps({**assets, "params": {}, "buffers": {}}))
    rehash(rec)
    assert read_record(rec).weights_known is False
    (rec / "assets.json").write_text("{}")
    rehash(rec)
    _refused(rec, "assets.json", "files: missing")


def test_header_reader_bounds_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62))
    with pytest.raises(Invalid, match="does not fit the file"):
        read_header(path, 8)
    path.write_bytes(b"\x01")
    with pytest.raises(Invalid, match="too short"):
        read_header(path, 1)
