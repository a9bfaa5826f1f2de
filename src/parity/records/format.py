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
the manifest carries ``manifest_sha256``, the sha256 of its own JSON without that field
(:func:`manifest_digest`), so a changed byte anywhere in the record is caught.

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

from parity._io import atomic_write_json, dumps_json, is_lfs_pointer, sha256_bytes, sha256_file
from parity._version import __version__
from parity.errors import LfsPointerError, RecordError

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
        **{k: v for k, v in fields.items() if k != DIGEST},
        "files": files,
    }
    manifest[DIGEST] = manifest_digest(manifest)
    atomic_write_json(root / MANIFEST, manifest)
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
    """A validated record directory. Large parts are loaded on first use.

    ``headers`` maps each safetensors file of the record to its validated header
    (name -> (dtype, shape, begin, end)); JSON files were parsed and checked at open.
    """

    path: Path
    manifest: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    headers: dict[str, Any] = field(default_factory=dict, repr=False)

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
                raise RecordError(f"{self.path / rel}: not in this record", fix="record again with the needed options")
            self._cache[rel] = load_json_file(self.path / rel)
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


_FIX_COPY = "copy the record again from its source, or record again"


def load_json_file(path: Path) -> Any:
    """A record's JSON file, read without following a symbolic link; RecordError naming it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        return json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"{path}: not valid JSON ({_one(exc)})", fix=_FIX_COPY) from None


def _one(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def read_record(path: str | os.PathLike[str], *, verify_hashes: bool = True) -> Record:
    """Open and validate a record directory.

    Checks, in order: the directory exists and holds no symbolic link or special file;
    the manifest is JSON of this format, not from a future version, fits the schema and
    its own ``manifest_sha256``; every listed file is a plain relative path inside the
    record, not a git-LFS pointer, with the listed size and (unless ``verify_hashes`` is
    false) sha256; then every JSON file and safetensors header fits the record schema
    (:func:`parity.records.validate.check_contents`). Raises :class:`RecordError` (an
    :class:`~parity.errors.LfsPointerError` for a pointer) naming the first bad file.
    """
    root = Path(path)
    if not root.exists():
        raise RecordError(f"{root}: no such record", fix="pass the directory written by `parity record`")
    if not root.is_dir():
        raise RecordError(f"{root}: not a directory", fix="pass the directory written by `parity record`")
    present = _scan(root)
    mpath = root / MANIFEST
    if MANIFEST not in present:
        raise RecordError(f"{mpath}: missing (incomplete or not a record)", fix="record again with `parity record`")
    manifest = _read_manifest(mpath)
    for rel, meta in manifest["files"].items():
        _check_file(root, rel, meta, present, verify_hashes)
    record = Record(path=root, manifest=manifest)
    from parity.records.validate import check_contents

    check_contents(record)
    return record


def _scan(root: Path) -> set[str]:
    """Relative paths of the record's regular files; RecordError for a symbolic link or
    anything but files and folders (FIFO, socket, device) anywhere inside."""
    files: set[str] = set()
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise RecordError(f"{root / prefix}: cannot be read ({exc.strerror})", fix=_FIX_COPY) from None
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                raise RecordError(f"{root / rel}: a symbolic link inside a record (refused: a record is read "
                                  "only from its own files)", fix="replace the link by a copy of the file, or record again")
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                files.add(rel)
            else:
                raise RecordError(f"{root / rel}: not a regular file (a FIFO, socket or device) inside a record",
                                  fix="remove it; a record holds only files and folders")
    return files


def _read_manifest(mpath: Path) -> dict[str, Any]:
    from parity.records.validate import MANIFEST_SCHEMA, Invalid

    if is_lfs_pointer(mpath):
        raise LfsPointerError(mpath)
    manifest = load_json_file(mpath)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordError(f"{mpath}: not a parity record manifest", fix="pass the directory written by `parity record`")
    version = manifest.get("format_version")
    if type(version) is not int:
        raise RecordError(f"{mpath}: format_version missing", fix="record again")
    if version > FORMAT_VERSION:
        raise RecordError(
            f"{mpath}: record format {version} is newer than this parity understands ({FORMAT_VERSION})",
            fix="upgrade parity in this environment",
        )
    try:
        MANIFEST_SCHEMA(manifest, "")
    except Invalid as exc:
        raise RecordError(f"{mpath}: {exc}", fix=_FIX_COPY) from None
    if DIGEST in manifest and manifest[DIGEST] != manifest_digest(manifest):
        raise RecordError(f"{mpath}: changed after it was written ({DIGEST} does not match)", fix=_FIX_COPY)
    return manifest


def _check_file(root: Path, rel: str, meta: dict[str, Any], present: set[str], verify_hashes: bool) -> None:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\0" in rel or any(p in ("", ".", "..") for p in parts) or rel == MANIFEST:
        raise RecordError(f"{root / MANIFEST}: lists a path outside the record: {rel!r}", fix=_FIX_COPY)
    fpath = root / rel
    if rel not in present:
        raise RecordError(f"{fpath}: missing from the record", fix="copy the whole record directory, or record again")
    if is_lfs_pointer(fpath):  # checked out without `git lfs pull`
        raise LfsPointerError(fpath)
    size = fpath.stat().st_size
    if size != meta["size"]:
        raise RecordError(
            f"{fpath}: size {size} bytes, manifest says {meta['size']} (truncated or modified)",
            fix="copy the record again from its source",
        )
    if verify_hashes and sha256_file(fpath) != meta["sha256"]:
        raise RecordError(
            f"{fpath}: sha256 does not match the manifest (corrupted or modified)",
            fix="copy the record again from its source",
        )
