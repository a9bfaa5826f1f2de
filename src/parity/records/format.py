"""The record format: what travels from environment A to environment B.

A record is a directory readable with nothing but JSON and safetensors::

    manifest.json        format version, parity version, target, inputs, capture level,
                         tolerances, and {"files": {relpath: {"sha256", "size"}}}
    env.json             environment snapshot of A (schema parity.snapshot/1), runtime included
    assets.json          {"files": {path: {"sha256","size"}}, "params": {name: {...}},
                          "buffers": {name: {...}}}
    stages.safetensors   stage tensors, named "<batch>/<stage>/<flat path>"
    stages.json          per batch and stage, the structure of the value (see LAYERS below)
    layers.json          execution-ordered list of layer entries (LAYER_FIELDS)
    activations/NNNNN.safetensors   size-bounded shards of layer tensors
    bench.json           optional baseline benchmark (parity.bench/1)
    inputs.json          {"kind": text|json|tensors|objects, "direct", "source", "count",
                          "batch_sizes", "items"}: A's raw inputs (items for text/json;
                          tensor inputs live in stages.safetensors as stage "inputs")
    module_inputs.json   capture=full: per module call {"key", "module", "call", "batch",
                          "args", "kwargs"}, structures whose tensor nodes are
                          {"tensor": {"shard", "name"}} (see parity.records.flatten)

Writing goes through :func:`finalize_manifest` inside :func:`parity._io.atomic_dir`;
reading goes through :func:`read_record`, which refuses anything tampered, truncated,
incomplete or from a future format, naming the bad file. Opening a record never runs
code: no pickle anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._io import atomic_write_json, sha256_file
from parity._version import __version__
from parity.errors import RecordError

FORMAT = "parity.record"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENV = "env.json"
ASSETS = "assets.json"
STAGES = "stages.safetensors"
STAGES_META = "stages.json"
LAYERS = "layers.json"
INPUTS = "inputs.json"
MODULE_INPUTS = "module_inputs.json"
BENCH = "bench.json"
ACTIVATIONS = "activations"
CAPTURE_LEVELS = ("outputs", "stats", "full")
STAGE_NAMES = ("inputs", "preprocess", "model", "postprocess")

#: Fields every entry of layers.json carries (others may be added, readers ignore them).
#: key      "<module path>#<call index><out path>", e.g. "encoder.layer.3#0/out/0"
#: module   module path ("" for the root), call: call index within one forward
#: out      position inside a nested output ("/out", "/out/0", "/out/last_hidden_state")
#: batch    index of the input batch this entry belongs to
#: type     module class name; kind: "tensor" or the Python type name of a non-tensor
#: shape, dtype  (tensors only); stats: {min,max,mean,std,l2,nan,inf} or null
#: hash     content hash of the tensor bytes; shard/tensor: where the full tensor
#:          (capture=full) or the sample (capture=stats) lives, else null
#: noise_floor  (with --calibrate) max abs run-to-run error of this entry across thread counts
#: value    (non-tensor JSON scalars only) the value itself
LAYER_FIELDS = ("key", "module", "call", "out", "batch", "type", "kind", "shape", "dtype", "stats", "hash")


def finalize_manifest(root: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Hash every file under ``root`` and write manifest.json last.

    ``fields`` carries the descriptive part (target, inputs, capture, tolerances...).
    Returns the manifest written.
    """
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(_walk(root)):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST:
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "parity_version": __version__,
        **dict(fields),
        "files": files,
    }
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name


@dataclass
class Record:
    """A validated record directory. Large parts are loaded on first use."""

    path: Path
    manifest: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def capture(self) -> str:
        return str(self.manifest.get("capture", "outputs"))

    @property
    def target(self) -> str | None:
        t = self.manifest.get("target")
        return str(t) if t is not None else None

    def has(self, rel: str) -> bool:
        return rel in self.manifest["files"]

    def json(self, rel: str) -> Any:
        """A JSON file of the record (cached); RecordError if absent or invalid."""
        if rel not in self._cache:
            if not self.has(rel):
                raise RecordError(f"{self.path / rel}: not in this record", fix="record again with the needed options")
            try:
                self._cache[rel] = json.loads((self.path / rel).read_text("utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RecordError(f"{self.path / rel}: unreadable ({exc})", fix="record again") from None
        return self._cache[rel]

    @property
    def env(self) -> dict[str, Any]:
        return dict(self.json(ENV)) if self.has(ENV) else {}

    @property
    def assets(self) -> dict[str, Any]:
        return dict(self.json(ASSETS)) if self.has(ASSETS) else {}

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.json(LAYERS)) if self.has(LAYERS) else []

    @property
    def bench(self) -> dict[str, Any] | None:
        return dict(self.json(BENCH)) if self.has(BENCH) else None

    def tensors(self, rel: str) -> Any:
        """An open safetensors file (framework "pt") for ``rel``; use ``.get_tensor(name)``."""
        if rel not in self._cache:
            if not self.has(rel):
                raise RecordError(f"{self.path / rel}: not in this record", fix="record with --capture full")
            from safetensors import safe_open

            try:
                self._cache[rel] = safe_open(str(self.path / rel), framework="pt")
            except Exception as exc:  # safetensors raises its own SafetensorError
                raise RecordError(f"{self.path / rel}: not a safetensors file ({exc})", fix="record again") from None
        return self._cache[rel]

    def tensor(self, rel: str, name: str) -> Any:
        """One tensor from a safetensors file of the record (torch.Tensor)."""
        handle = self.tensors(rel)
        try:
            return handle.get_tensor(name)
        except Exception as exc:
            raise RecordError(f"{self.path / rel}: no tensor {name!r} ({exc})", fix="record again") from None


def read_record(path: str | os.PathLike[str], *, verify_hashes: bool = True) -> Record:
    """Open and validate a record directory.

    Checks, in order: the directory and manifest exist; the manifest is JSON of this
    format and not from a future version; every listed file exists with the listed
    size and (unless ``verify_hashes`` is false) sha256; no listed file is missing.
    Raises :class:`RecordError` naming the first bad file.
    """
    root = Path(path)
    if not root.exists():
        raise RecordError(f"{root}: no such record", fix="pass the directory written by `parity record`")
    if not root.is_dir():
        raise RecordError(f"{root}: not a directory", fix="pass the directory written by `parity record`")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise RecordError(f"{mpath}: missing (incomplete or not a record)", fix="record again with `parity record`")
    try:
        manifest = json.loads(mpath.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{mpath}: not valid JSON ({exc})", fix="record again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordError(f"{mpath}: not a parity record manifest", fix="pass the directory written by `parity record`")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise RecordError(f"{mpath}: format_version missing", fix="record again")
    if version > FORMAT_VERSION:
        raise RecordError(
            f"{mpath}: record format {version} is newer than this parity understands ({FORMAT_VERSION})",
            fix="upgrade parity in this environment",
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise RecordError(f"{mpath}: file list missing", fix="record again")
    for rel, meta in files.items():
        _check_file(root, rel, meta, verify_hashes)
    return Record(path=root, manifest=manifest)


def _check_file(root: Path, rel: str, meta: Any, verify_hashes: bool) -> None:
    fpath = root / rel
    if ".." in Path(rel).parts or Path(rel).is_absolute():
        raise RecordError(f"{root / MANIFEST}: lists a path outside the record: {rel!r}", fix="record again")
    if not fpath.is_file():
        raise RecordError(f"{fpath}: missing from the record", fix="copy the whole record directory, or record again")
    if not isinstance(meta, dict):
        raise RecordError(f"{root / MANIFEST}: bad entry for {rel}", fix="record again")
    size = fpath.stat().st_size
    if size != meta.get("size"):
        raise RecordError(
            f"{fpath}: size {size} bytes, manifest says {meta.get('size')} (truncated or modified)",
            fix="copy the record again from its source",
        )
    if verify_hashes and sha256_file(fpath) != meta.get("sha256"):
        raise RecordError(
            f"{fpath}: sha256 does not match the manifest (corrupted or modified)",
            fix="copy the record again from its source",
        )
