"""Strict checks of a record's contents, run by :func:`parity.records.format.read_record`
at open time, before any verdict (this module knows no record store: it checks what
read_record hands it).

A record is data from elsewhere, so nothing in it is trusted:

- every safetensors header is checked against the file it heads: a bounded header
  length, known dtypes, shape x dtype size == byte range, ranges inside the data
  section, in order, with no overlap and no hole (what safetensors itself requires);
- every JSON file is checked against the record schema: the types of every field
  parity's readers use (fields they ignore may hold anything);
- every tensor a JSON file points at (layer entries, stage and module-input
  structures) must exist in the file it names, with the dtype and size the entry says.

Cost: one pass over each JSON document and header, O(number of tensors and layer
entries); tensor data are never read here (read_record checks their sha256).
Errors are :class:`Invalid` with a message saying where and what; read_record turns
them into a RecordError naming the file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from parity.records.flatten import namedtuple_class
from parity.records.native import SKETCH_SIZE
from parity.records.stats import SKETCH_PARTS, SKETCH_SCHEME

#: bytes per element of each safetensors dtype parity reads
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "C64": 8, "F64": 8, "I64": 8, "U64": 8,
}
#: torch dtype name (as layers.json writes it) -> safetensors dtype
TORCH_DTYPES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
    "int16": "I16", "uint16": "U16", "float16": "F16", "bfloat16": "BF16", "int32": "I32", "uint32": "U32",
    "float32": "F32", "complex64": "C64", "float64": "F64", "int64": "I64", "uint64": "U64",
}
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
MAX_RANK = 64
MAX_DEPTH = 100  # of a value structure (flatten writes far fewer levels)
_NODE_KINDS = ("tensor", "value", "dict", "tuple", "list", "object")
_NODE_EXTRA = {"dict": {"class"}, "tuple": {"namedtuple"}}

#: name -> (safetensors dtype, shape, begin, end) of one file's tensors
Header = dict[str, tuple[str, tuple[int, ...], int, int]]
Check = Callable[[Any, str], None]


class Invalid(Exception):
    """What is wrong inside one file (the caller names the file)."""


# -------------------------------------------------------------------- safetensors


def read_header(source: Path | IO[bytes], size: int) -> Header:
    """The validated header of the safetensors file ``source`` (a local path, or a
    binary file open at its start, e.g. a record store member) of ``size`` bytes."""
    if size < 8:
        raise Invalid(f"{size} bytes: too short for a safetensors file")
    if isinstance(source, (str, os.PathLike)):
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            return read_header(f, size)
    (n,) = struct.unpack("<Q", source.read(8))
    if n > size - 8 or n > MAX_HEADER_BYTES:
        raise Invalid(f"header length {n} does not fit the file ({size} bytes; "
                      f"at most {MAX_HEADER_BYTES} allowed)")
    raw = source.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Invalid(f"header is not valid JSON ({_short(exc)})") from None
    if not isinstance(header, dict):
        raise Invalid("header is not a JSON object")
    data_len = size - 8 - n
    out: Header = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise Invalid("header __metadata__ must map names to strings")
            continue
        out[name] = _tensor_info(name, info, data_len)
    _check_layout(out, data_len)
    return out


def _tensor_info(name: str, info: Any, data_len: int) -> tuple[str, tuple[int, ...], int, int]:
    where = f"tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise Invalid(f"{where}: needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise Invalid(f"{where}: dtype {dtype!r} is not a safetensors dtype parity reads")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_nat(d) for d in shape):
        raise Invalid(f"{where}: shape must be a list of at most {MAX_RANK} integers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_nat(o) for o in offsets)):
        raise Invalid(f"{where}: data_offsets must be [begin, end]")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise Invalid(f"{where}: bytes {begin}..{end} lie outside the data section ({data_len} bytes)")
    numel = 1
    for d in shape:
        numel *= d
    if numel * DTYPE_SIZES[dtype] != end - begin:
        raise Invalid(f"{where}: shape {shape} x {dtype} is {numel * DTYPE_SIZES[dtype]} bytes, "
                      f"its byte range {end - begin}")
    return dtype, tuple(shape), begin, end


def _check_layout(tensors: Header, data_len: int) -> None:
    """The byte ranges tile the data section: no overlap, no hole, nothing after."""
    expected = 0
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != expected:
            what = "overlaps the tensor before it" if begin < expected else f"leaves bytes {expected}..{begin} unused"
            raise Invalid(f"tensor {name!r}: bytes {begin}..{end} {what}")
        expected = end
    if expected != data_len:
        raise Invalid(f"data section is {data_len} bytes, its tensors cover {expected}")


# -------------------------------------------------------------------- JSON schema


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _fail(where: str, want: str, value: Any) -> None:
    raise Invalid(f"{where or 'top level'}: expected {want}, got {_kind(value)}")


def _is_nat(v: Any) -> bool:
    return type(v) is int and v >= 0


def is_str(v: Any, w: str) -> None:
    if not isinstance(v, str):
        _fail(w, "a string", v)


def is_int(v: Any, w: str) -> None:
    if type(v) is not int:
        _fail(w, "an integer", v)


def is_nat(v: Any, w: str) -> None:
    if not _is_nat(v):
        _fail(w, "an integer >= 0", v)


def is_num(v: Any, w: str) -> None:
    if type(v) not in (int, float):
        _fail(w, "a number", v)


def is_bool(v: Any, w: str) -> None:
    if type(v) is not bool:
        _fail(w, "true or false", v)


def is_scalar(v: Any, w: str) -> None:
    if v is not None and type(v) not in (bool, int, float, str):
        _fail(w, "a JSON scalar", v)


def is_dict(v: Any, w: str) -> None:
    if not isinstance(v, dict):
        _fail(w, "an object", v)


def is_list(v: Any, w: str) -> None:
    if not isinstance(v, list):
        _fail(w, "a list", v)


def nullable(check: Check) -> Check:
    def run(v: Any, w: str) -> None:
        if v is not None:
            check(v, w)
    return run


def one_of(*values: Any) -> Check:
    def run(v: Any, w: str) -> None:
        if not isinstance(v, str) or v not in values:
            _fail(w, "one of " + ", ".join(map(str, values)), v)
    return run


def list_of(check: Check) -> Check:
    def run(v: Any, w: str) -> None:
        is_list(v, w)
        for i, x in enumerate(v):
            check(x, f"{w}[{i}]")
    return run


def dict_of(check: Check) -> Check:
    def run(v: Any, w: str) -> None:
        is_dict(v, w)
        for k, x in v.items():
            check(x, f"{w}[{k!r}]")
    return run


def obj(required: Mapping[str, Check], optional: Mapping[str, Check] | None = None) -> Check:
    """An object with ``required`` fields and, when present, ``optional`` ones."""
    def run(v: Any, w: str) -> None:
        is_dict(v, w)
        for k, check in required.items():
            if k not in v:
                raise Invalid(f"{w + '.' if w else ''}{k}: missing")
            check(v[k], f"{w}.{k}" if w else k)
        for k, check in (optional or {}).items():
            if k in v:
                check(v[k], f"{w}.{k}" if w else k)
    return run


def sha_hex(v: Any, w: str) -> None:
    if not (isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)):
        _fail(w, "a sha256 in hex", v)


# -------------------------------------------------------------------- the record schema

_CAPTURES = ("outputs", "stats", "full")
_TOLERANCES = obj({}, {"atol": nullable(is_num), "rtol": nullable(is_num), "overrides": dict_of(dict_of(is_num))})

MANIFEST_SCHEMA = obj(
    {"files": dict_of(obj({"sha256": sha_hex, "size": is_nat}))},
    {"capture": one_of(*_CAPTURES), "target": nullable(is_str), "target_kind": nullable(is_str),
     "name": nullable(is_str), "created": nullable(is_str), "parity_version": nullable(is_str),
     "inputs": nullable(obj({}, {"source": nullable(is_str), "kind": is_str, "count": is_nat})),
     "batch_size": nullable(is_nat), "batches": is_nat, "seed": is_int, "sample_size": is_nat, "hash": is_str,
     "layers_captured": is_bool, "calibrated": is_bool,
     "calibration": nullable(obj({}, {"threads": is_int, "other_threads": nullable(is_int)})),
     "tolerances": nullable(_TOLERANCES), "warnings": list_of(is_str), "timings": nullable(dict_of(nullable(is_num))),
     "manifest_sha256": sha_hex, "full_layers": nullable(list_of(is_str))},
)

_PLACEMENT = obj({}, {"dtype": is_str, "device": is_str})
_MODEL_STATE = obj({}, {
    "training_modules": list_of(is_str), "parameters": dict_of(_PLACEMENT), "buffers": dict_of(_PLACEMENT),
    "grad_enabled": is_bool, "inference_mode": is_bool, "autocast": dict_of(is_dict), "default_dtype": is_str,
    "threads": is_int, "interop_threads": is_int, "deterministic_algorithms": is_bool,
    "float32_matmul_precision": is_str, "cuda_matmul_allow_tf32": is_bool, "cudnn": dict_of(is_bool),
    "model_class": is_str,
})
ENV_SCHEMA = obj({"schema": is_str}, {
    "meta": is_dict, "python": is_dict, "platform": is_dict, "cpu": is_dict,
    "packages": dict_of(obj({"version": is_str})), "torch": nullable(is_dict), "nvidia_wheels": nullable(is_dict),
    "gpu": nullable(is_dict), "env_vars": is_dict, "package_sources": nullable(is_dict),
    "runtime": nullable(obj({}, {"torch": nullable(is_dict), "threadpool": nullable(is_dict),
                                 "numpy": nullable(is_str), "model": nullable(_MODEL_STATE)})),
})

_WEIGHT = obj({"hash": nullable(is_str)}, {"dtype": is_str, "shape": list_of(is_nat), "device": is_str,
                                          "tied_to": is_str})
ASSETS_SCHEMA = obj(
    {"files": dict_of(obj({"sha256": is_str}, {"size": is_nat, "source": nullable(is_str)})),
     "params": dict_of(_WEIGHT)},
    {"buffers": dict_of(_WEIGHT)},
)
_STATS = obj({}, {"min": nullable(is_num), "max": nullable(is_num), "mean": nullable(is_num),
                  "std": nullable(is_num), "l2": nullable(is_num), "l1": nullable(is_num), "nan": is_nat,
                  "inf": is_nat})


def is_sketch(v: Any, w: str) -> None:
    """A layer's sketch: ``{"scheme", "seed", "values", "sq"}``; for the scheme parity
    writes, each part is base64 of exactly SKETCH_SIZE finite float32, the sums of x^2
    not negative (another scheme is ignored by the comparison, so only its seed and
    scheme are checked)."""
    obj({"scheme": is_str, "seed": is_nat})(v, w)
    if v["seed"] > 0xFFFFFFFF:
        raise Invalid(f"{w}.seed: {v['seed']} is not a 32-bit seed")
    if v["scheme"] != SKETCH_SCHEME:
        return
    for name in SKETCH_PARTS:
        where = f"{w}.{name}"
        if name not in v:
            raise Invalid(f"{where}: missing")
        is_str(v[name], where)
        try:
            raw = base64.b64decode(v[name], validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"{where}: not base64") from None
        if len(raw) != 4 * SKETCH_SIZE:
            raise Invalid(f"{where}: {len(raw)} bytes, the {SKETCH_SCHEME} sketch has {4 * SKETCH_SIZE}")
        values = struct.unpack(f"<{SKETCH_SIZE}f", raw)
        if not all(math.isfinite(x) for x in values):
            raise Invalid(f"{where}: not finite (NaN or infinity)")
        if name != "values" and min(values) < 0:
            raise Invalid(f"{where}: a sum of magnitudes below zero")


_LAYER = obj(
    {"key": is_str, "module": is_str, "call": is_nat, "out": is_str, "batch": is_nat, "kind": is_str},
    {"type": nullable(is_str), "shape": nullable(list_of(is_nat)), "dtype": nullable(is_str),
     "stats": nullable(_STATS), "hash": nullable(is_str), "shard": nullable(is_str), "tensor": nullable(is_str),
     "noise_floor": nullable(is_num), "value": is_scalar, "sketch": nullable(is_sketch)},
)
INPUTS_SCHEMA = obj({"kind": one_of("text", "json", "tensors", "objects")}, {
    "direct": is_bool, "source": nullable(is_str), "count": is_nat, "batch_sizes": list_of(is_nat),
    "items": nullable(is_list),
})
_STAGE_BATCH = obj({"batch": is_nat, "size": is_nat, "stages": is_dict})
_CALL = obj({"key": is_str, "module": is_str, "call": is_nat, "batch": is_nat, "args": is_dict, "kwargs": is_dict})


def check_node(node: Any, w: str, tensor: Check, depth: int = 0) -> None:
    """A value structure (see :mod:`parity.records.flatten`); ``tensor`` checks what a
    ``{"tensor": ...}`` node holds."""
    if depth > MAX_DEPTH:
        raise Invalid(f"{w}: nested deeper than {MAX_DEPTH} levels")
    is_dict(node, w)
    kinds = [k for k in _NODE_KINDS if k in node]
    if len(kinds) != 1:
        raise Invalid(f"{w}: a value needs exactly one of {', '.join(_NODE_KINDS)}")
    kind = kinds[0]
    extra = set(node) - {kind} - _NODE_EXTRA.get(kind, set())
    if extra:
        raise Invalid(f"{w}: unknown key {sorted(extra)[0]!r}")
    value, where = node[kind], f"{w}.{kind}"
    if kind == "tensor":
        tensor(value, where)
    elif kind == "value":
        is_scalar(value, where)
    elif kind == "object":
        is_str(value, where)
    elif kind == "dict":
        nullable(is_str)(node.get("class"), f"{w}.class")
        is_dict(value, where)
        for k, child in value.items():
            check_node(child, f"{where}[{k!r}]", tensor, depth + 1)
    else:
        is_list(value, where)
        for i, child in enumerate(value):
            check_node(child, f"{where}[{i}]", tensor, depth + 1)
        if "namedtuple" in node:
            try:
                namedtuple_class(node["namedtuple"], len(value))
            except ValueError as exc:
                raise Invalid(f"{w}.namedtuple: {exc}") from None


def _prod(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _stored_tensor(headers: Mapping[str, Header], shard: Any, name: Any, w: str) -> tuple[str, tuple[int, ...]]:
    """(dtype, shape) of the tensor ``name`` in record file ``shard``."""
    is_str(shard, f"{w}.shard")
    is_str(name, f"{w}.tensor")
    rel = shard if "/" in shard else f"activations/{shard}"
    header = headers.get(rel)
    if header is None:
        raise Invalid(f"{w}.shard: {shard!r} is not a safetensors file of this record")
    if name not in header:
        raise Invalid(f"{w}.tensor: {rel} has no tensor {name!r}")
    dtype, shape, _, _ = header[name]
    return dtype, shape


def layers_check(headers: Mapping[str, Header], capture: str, sample_size: int) -> Check:
    """layers.json: a list of entries; each stored tensor or sample exists with the
    entry's dtype and the entry's shape (full) or sample length (stats)."""
    def run(data: Any, w: str) -> None:
        is_list(data, w)
        for i, e in enumerate(data):
            where = f"[{i}]"
            _LAYER(e, where)
            if e["kind"] == "tensor" and not (isinstance(e.get("shape"), list) and isinstance(e.get("dtype"), str)):
                raise Invalid(f"{where}: a tensor entry needs shape and dtype")
            if e.get("shard") is None:
                continue
            if e["kind"] != "tensor":
                raise Invalid(f"{where}: a {e['kind']} entry has no stored tensor")
            dtype, shape = _stored_tensor(headers, e["shard"], e.get("tensor"), where)
            if TORCH_DTYPES.get(e["dtype"]) != dtype:
                raise Invalid(f"{where}: entry says {e['dtype']}, {e['shard']} stores {dtype}")
            numel = _prod(e["shape"])
            want = list(e["shape"]) if capture == "full" else [min(numel, sample_size)]
            if list(shape) != want and not (capture != "full" and _prod(shape) == numel):
                raise Invalid(f"{where}: stored shape {list(shape)}, the entry needs {want}")
    return run


def stages_check(headers: Mapping[str, Header]) -> Check:
    """stages.json: {"batches": [{"batch","size","stages": {stage: structure}}]}."""
    header = headers.get("stages.safetensors", {})

    def tensor(v: Any, w: str) -> None:
        is_str(v, w)
        if v not in header:
            raise Invalid(f"{w}: stages.safetensors has no tensor {v!r}")

    def run(data: Any, w: str) -> None:
        obj({"batches": is_list})(data, w)
        for i, batch in enumerate(data["batches"]):
            _STAGE_BATCH(batch, f"batches[{i}]")
            for stage, node in batch["stages"].items():
                check_node(node, f"batches[{i}].stages[{stage!r}]", tensor)
    return run


def module_inputs_check(headers: Mapping[str, Header]) -> Check:
    """module_inputs.json: per call, args (a tuple/list) and kwargs (a dict) structures
    whose tensors are ``{"shard", "name"}`` of an activations shard."""
    def tensor(v: Any, w: str) -> None:
        is_dict(v, w)
        _stored_tensor(headers, v.get("shard"), v.get("name"), w)

    def run(data: Any, w: str) -> None:
        is_list(data, w)
        for i, call in enumerate(data):
            where = f"[{i}]"
            _CALL(call, where)
            check_node(call["args"], f"{where}.args", tensor)
            check_node(call["kwargs"], f"{where}.kwargs", tensor)
            if not ({"tuple", "list"} & set(call["args"])) or "dict" not in call["kwargs"]:
                raise Invalid(f"{where}: args must be a tuple and kwargs a dict")
    return run


def inputs_check(data: Any, w: str) -> None:
    """inputs.json; text and JSON inputs carry their items, counted as recorded."""
    INPUTS_SCHEMA(data, w)
    items, kind = data.get("items"), data["kind"]
    if kind in ("text", "json") and not isinstance(items, list):
        raise Invalid(f"items: {kind} inputs need their items")
    if kind == "text":
        list_of(is_str)(items, "items")
    count = data.get("count")
    if isinstance(items, list) and count is not None and len(items) != count:
        raise Invalid(f"count: {count}, but {len(items)} items")
    sizes = data.get("batch_sizes")
    if sizes is not None and count is not None and sum(sizes) != count:
        raise Invalid(f"batch_sizes: add up to {sum(sizes)}, count is {count}")


def bench_check(data: Any, w: str) -> None:
    """bench.json: what a performance comparison reads (parity.bench/1)."""
    from parity.benchmark.compare import validated_bench
    from parity.errors import BenchError

    try:
        validated_bench(data, "bench.json")
    except BenchError as exc:
        raise Invalid(exc.message.removeprefix("bench.json: ")) from None
    obj({}, {"model": nullable(is_dict), "env": nullable(is_dict)})(data, w)


def check_complete(manifest: Mapping[str, Any]) -> None:
    """The files the manifest's own fields say the recorder wrote are all listed (a
    forger who deletes layers.json and re-hashes gets no "nothing to compare")."""
    files = manifest["files"]
    needed = []
    if "inputs" in manifest:  # written by `parity record` (hand-made records may lack these)
        needed += ["env.json", "assets.json", "stages.safetensors", "stages.json", "inputs.json"]
    if manifest.get("layers_captured") is True:
        needed.append("layers.json")
        if manifest.get("capture") == "full":
            needed.append("module_inputs.json")
    for rel in needed:
        if rel not in files:
            raise Invalid(f"does not list {rel}, which a record of this kind always has")


def check_counts(rel: str, data: Any, manifest: Mapping[str, Any]) -> None:
    """Counts that must agree with the manifest: batches, inputs, captured layers."""
    batches = manifest.get("batches")
    if rel == "stages.json" and isinstance(batches, int):
        found = [b["batch"] for b in data["batches"]]
        if found != list(range(batches)):
            raise Invalid(f"batches: {len(found)} listed (numbered {found[:5]}...), the manifest says {batches}")
    elif rel == "inputs.json":
        count = (manifest.get("inputs") or {}).get("count")
        if count is not None and data.get("count") not in (None, count):
            raise Invalid(f"count: {data.get('count')}, the manifest says {count}")
        if isinstance(batches, int) and "batch_sizes" in data and len(data["batch_sizes"]) != batches:
            raise Invalid(f"batch_sizes: {len(data['batch_sizes'])} batches, the manifest says {batches}")
    elif rel in ("layers.json", "module_inputs.json") and manifest.get("layers_captured") is True:
        seen = {e["batch"] for e in data}
        # --layers: the selected modules may not run in every batch (or at all)
        targeted = rel == "module_inputs.json" and manifest.get("full_layers")
        if isinstance(batches, int) and (not seen <= set(range(batches)) if targeted else seen != set(range(batches))):
            raise Invalid(f"entries for batches {sorted(seen)[:5]}, the manifest says {batches} batches")
