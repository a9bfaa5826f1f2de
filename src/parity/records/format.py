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

Records are read and written only through a record store
(:mod:`parity.records.store`: a local folder now). Writing ends with
:func:`finalize_manifest`, which commits the store's writer with the manifest written
last; the manifest carries ``manifest_sha256``, the sha256 of its own JSON without that
field (:func:`manifest_digest`), so a changed byte anywhere in the record is caught.

Reading goes through :func:`read_record`, which refuses, naming the bad file and before
any verdict: anything tampered, truncated, incomplete or from a future format; any
symbolic link or special file anywhere in the record; a manifest entry that is not a
plain relative path inside it; a git-LFS pointer in place of a file; a JSON file that
does not fit the record schema or a safetensors header that does not fit its file
(:mod:`parity.records.validate`). Opening a record never runs code: no pickle anywhere,
and a named tuple type is rebuilt only from an allow-list (:mod:`parity.records.flatten`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._io import atomic_write_json, dumps_json, sha256_bytes, sha256_file
from parity._version import __version__
from parity.errors import LfsPointerError, RecordError
from parity.records import validate
from parity.records.store import MANIFEST, RecordReader, RecordWriter, store_for

FORMAT = "parity.record"
FORMAT_VERSION = 1
ENV = "env.json"
ASSETS = "assets.json"
STAGES = "stages.safetensors"
STAGES_META = "stages.json"
LAYERS = "layers.json"
INPUTS = "inputs.json"
MODULE_INPUTS = "module_inputs.json"
BENCH = "bench.json"
DIGEST = "manifest_sha256"
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


def finalize_manifest(target: RecordWriter | Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Write manifest.json last, listing every file of the record with its sha256 and size.

    ``target`` is the :class:`~parity.records.store.RecordWriter` of a record being
    written (the manifest commits it) or a local record folder, sealed again in place
    (hand-made or edited records). ``fields`` carries the descriptive part (target,
    inputs, capture, tolerances...). Returns the manifest written.
    """
    if isinstance(target, RecordWriter):
        manifest = build_manifest(fields, target.members())
        target.commit(manifest)
        return manifest
    root = Path(target)
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(_walk(root)):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST:
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = build_manifest(fields, files)
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def build_manifest(fields: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The manifest document: format, version, ``fields``, ``files`` and its own digest."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "parity_version": __version__,
        **{k: v for k, v in fields.items() if k != DIGEST},
        "files": {name: dict(meta) for name, meta in files.items()},
    }
    manifest[DIGEST] = manifest_digest(manifest)
    return manifest


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's JSON (as parity writes it) without ``manifest_sha256``."""
    return sha256_bytes(dumps_json({k: v for k, v in manifest.items() if k != DIGEST}).encode("utf-8"))


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name


@dataclass
class Record:
    """A validated record, read through its store's :class:`RecordReader`. Large parts
    are loaded on first use.

    ``headers`` maps each safetensors file of the record to its validated header
    (name -> (dtype, shape, begin, end)); JSON files were parsed and checked at open.
    """

    reader: RecordReader
    manifest: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    headers: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def location(self) -> str:
        """Where the record is, as given (a folder or a URL)."""
        return self.reader.location

    @property
    def path(self) -> Path:
        """The record's folder (for a record elsewhere, its location as a path)."""
        return Path(self.reader.location)

    def where(self, rel: str = "") -> str:
        """A file of the record, named for messages."""
        return self.reader.where(rel)

    @property
    def capture(self) -> str:
        return str(self.manifest.get("capture", "outputs"))

    @property
    def target(self) -> str | None:
        t = self.manifest.get("target")
        return str(t) if t is not None else None

    @property
    def weights_known(self) -> bool:
        """Whether the record lists its weights: an assets.json with no parameter and no
        buffer (an ONNX/AOTI artifact, a hand-made record) means "weights unknown", which
        a comparison must never report as "same weights"."""
        assets = self.assets
        return bool(assets.get("params") or assets.get("buffers"))

    def has(self, rel: str) -> bool:
        return rel in self.manifest["files"]

    def json(self, rel: str) -> Any:
        """A JSON file of the record (cached); RecordError if absent or invalid."""
        if rel not in self._cache:
            if not self.has(rel):
                raise RecordError(f"{self.where(rel)}: not in this record", fix="record again with the needed options")
            self._cache[rel] = read_json_member(self.reader, rel)
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
                raise RecordError(f"{self.where(rel)}: not in this record", fix="record with --capture full")
            try:
                self._cache[rel] = _open_tensors(self.reader, rel)
            except Exception as exc:  # safetensors raises its own SafetensorError
                raise RecordError(f"{self.where(rel)}: not a safetensors file ({exc})", fix="record again") from None
        return self._cache[rel]

    def tensor(self, rel: str, name: str) -> Any:
        """One tensor from a safetensors file of the record (torch.Tensor)."""
        handle = self.tensors(rel)
        try:
            return handle.get_tensor(name)
        except Exception as exc:
            raise RecordError(f"{self.where(rel)}: no tensor {name!r} ({exc})", fix="record again") from None


def _open_tensors(reader: RecordReader, rel: str) -> Any:
    """A local file mapped by safetensors; a member elsewhere read into memory."""
    local = reader.local_path(rel)
    if local is not None:
        from safetensors import safe_open

        return safe_open(str(local), framework="pt")
    return _LoadedTensors(reader.read_bytes(rel))


class _LoadedTensors:
    """safetensors bytes, with ``safe_open``'s ``keys()`` and ``get_tensor(name)``."""

    def __init__(self, raw: bytes) -> None:
        from safetensors.torch import load

        self._tensors = load(raw)

    def keys(self) -> list[str]:
        return list(self._tensors)

    def get_tensor(self, name: str) -> Any:
        return self._tensors[name]


_FIX_COPY = "copy the record again from its source, or record again"


def read_json_member(reader: RecordReader, rel: str) -> Any:
    """A record's JSON file (links are not followed); RecordError naming it."""
    try:
        return json.loads(reader.read_bytes(rel).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"{reader.where(rel)}: not valid JSON ({_one(exc)})", fix=_FIX_COPY) from None


def _one(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def read_record(location: str | os.PathLike[str] | RecordReader, *, verify_hashes: bool = True) -> Record:
    """Open and validate a record: a folder, a URL of a registered store
    (:func:`parity.records.store.store_for`), or a reader already open.

    Checks, in order: the record exists and holds no symbolic link or special file;
    the manifest is JSON of this format, not from a future version, fits the schema and
    its own ``manifest_sha256``; every listed file is a plain relative path inside the
    record, not a git-LFS pointer, with the listed size and (unless ``verify_hashes`` is
    false) sha256 (:meth:`RecordReader.verify`); then every JSON file and safetensors
    header fits the record schema (:mod:`parity.records.validate`).
    Raises :class:`RecordError` (an :class:`~parity.errors.LfsPointerError` for a
    pointer) naming the first bad file.
    """
    reader = location if isinstance(location, RecordReader) else store_for(location).open_reader(location)
    present = set(reader.list())
    if MANIFEST not in present:
        raise RecordError(f"{reader.where(MANIFEST)}: missing (incomplete or not a record)",
                          fix="record again with `parity record`")
    manifest = _read_manifest(reader)
    reader.verify(manifest["files"], hashes=verify_hashes, present=present)
    record = Record(reader=reader, manifest=manifest)
    _check_contents(record)
    return record


def _check_contents(record: Record) -> None:
    """Validate every safetensors header and JSON file of a record whose file list was
    checked (:mod:`parity.records.validate`); fills ``record.headers`` and the
    parsed-JSON cache. RecordError names the bad file."""
    files = record.manifest["files"]
    current = MANIFEST
    try:
        validate.check_complete(record.manifest)
        for rel in sorted(files):
            if rel.endswith(".safetensors"):
                current = rel
                with record.reader.open(rel) as f:
                    record.headers[rel] = validate.read_header(f, files[rel]["size"])
        sample_size = int(record.manifest.get("sample_size", 64))
        checks: dict[str, validate.Check] = {
            ENV: validate.ENV_SCHEMA, ASSETS: validate.ASSETS_SCHEMA, INPUTS: validate.inputs_check,
            STAGES_META: validate.stages_check(record.headers),
            LAYERS: validate.layers_check(record.headers, record.capture, sample_size),
            MODULE_INPUTS: validate.module_inputs_check(record.headers), BENCH: validate.bench_check,
        }
        for rel, check in checks.items():
            if rel in files:
                current = rel
                check(record.json(rel), "")
                validate.check_counts(rel, record.json(rel), record.manifest)
    except validate.Invalid as exc:
        raise RecordError(f"{record.where(current)}: {exc}", fix=_FIX_COPY) from None


def _read_manifest(reader: RecordReader) -> dict[str, Any]:
    where = reader.where(MANIFEST)
    if reader.is_lfs_pointer(MANIFEST):
        raise LfsPointerError(where)
    manifest = read_json_member(reader, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordError(f"{where}: not a parity record manifest", fix="pass the directory written by `parity record`")
    version = manifest.get("format_version")
    if type(version) is not int:
        raise RecordError(f"{where}: format_version missing", fix="record again")
    if version > FORMAT_VERSION:
        raise RecordError(
            f"{where}: record format {version} is newer than this parity understands ({FORMAT_VERSION})",
            fix="upgrade parity in this environment",
        )
    try:
        validate.MANIFEST_SCHEMA(manifest, "")
    except validate.Invalid as exc:
        raise RecordError(f"{where}: {exc}", fix=_FIX_COPY) from None
    if DIGEST in manifest and manifest[DIGEST] != manifest_digest(manifest):
        raise RecordError(f"{where}: changed after it was written ({DIGEST} does not match)", fix=_FIX_COPY)
    return manifest
