"""Corrupted-record matrix: every file of one real record (full capture, environment
snapshot, bench baseline) x {truncate, flip a byte, delete, replace by a symlink to an
identical copy, re-hashed malformed JSON (null, {}, [], a wrong type in each field the
readers use), forged safetensors headers}. `parity verify` must exit 2 with one line
naming the file: never PASS, never a traceback, never exit 3. Plus bounded hypothesis
fuzzing of the header validator and of the JSON readers."""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parity.records.format import MANIFEST, finalize_manifest, manifest_digest

TARGET = '''
import torch
from torch import nn
from parity.target import Pipeline


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    return Pipeline(model=model, preprocess=lambda rows: torch.tensor(rows, dtype=torch.float32),
                    postprocess=lambda out: out.softmax(-1), batch_size=2, name="matrix")
'''
INPUTS = [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 2.0, 1.0], [3.0, 1.0, -2.0, 0.5]]
SHARD = "activations/00000.safetensors"
FILES = ["activations/00000.safetensors", "assets.json", "bench.json", "env.json", "inputs.json", "layers.json",
         "manifest.json", "module_inputs.json", "stages.json", "stages.safetensors"]
JSON_FILES = [f for f in FILES if f.endswith(".json")]
SAFETENSORS = [f for f in FILES if f.endswith(".safetensors")]

#: (file, path) of fields parity's readers use; a path step is a key, or 0 for a list's first item
FIELDS: list[tuple[str, tuple[Any, ...]]] = [
    ("manifest.json", ("files",)), ("manifest.json", ("capture",)), ("manifest.json", ("target",)),
    ("manifest.json", ("batch_size",)), ("manifest.json", ("seed",)), ("manifest.json", ("sample_size",)),
    ("manifest.json", ("tolerances",)), ("manifest.json", ("inputs",)), ("manifest.json", ("format_version",)),
    ("manifest.json", ("files", "layers.json", "size")), ("manifest.json", ("files", "layers.json", "sha256")),
    ("env.json", ("schema",)), ("env.json", ("meta",)), ("env.json", ("packages",)), ("env.json", ("runtime",)),
    ("env.json", ("python",)), ("env.json", ("platform",)), ("env.json", ("cpu",)), ("env.json", ("env_vars",)),
    ("env.json", ("runtime", "model")), ("env.json", ("runtime", "model", "training_modules")),
    ("env.json", ("runtime", "model", "parameters")), ("env.json", ("runtime", "model", "grad_enabled")),
    ("env.json", ("packages", "torch")), ("env.json", ("packages", "torch", "version")),
    ("assets.json", ("files",)), ("assets.json", ("params",)), ("assets.json", ("buffers",)),
    ("assets.json", ("params", "0.weight")), ("assets.json", ("params", "0.weight", "hash")),
    ("assets.json", ("params", "0.weight", "shape")),
    ("stages.json", ("batches",)), ("stages.json", ("batches", 0)), ("stages.json", ("batches", 0, "stages")),
    ("stages.json", ("batches", 0, "size")), ("stages.json", ("batches", 0, "stages", "model")),
    ("stages.json", ("batches", 0, "stages", "model", "tensor")),
    ("layers.json", (0,)), ("layers.json", (0, "key")), ("layers.json", (0, "module")), ("layers.json", (0, "batch")),
    ("layers.json", (0, "shape")), ("layers.json", (0, "dtype")), ("layers.json", (0, "stats")),
    ("layers.json", (0, "stats", "min")), ("layers.json", (0, "hash")), ("layers.json", (0, "shard")),
    ("layers.json", (0, "tensor")), ("layers.json", (0, "kind")), ("layers.json", (0, "call")),
    ("inputs.json", ("kind",)), ("inputs.json", ("items",)), ("inputs.json", ("count",)),
    ("inputs.json", ("direct",)), ("inputs.json", ("batch_sizes",)),
    ("module_inputs.json", (0,)), ("module_inputs.json", (0, "key")), ("module_inputs.json", (0, "args")),
    ("module_inputs.json", (0, "kwargs")), ("module_inputs.json", (0, "batch")),
    ("module_inputs.json", (0, "args", "tuple")), ("module_inputs.json", (0, "args", "tuple", 0, "tensor")),
    ("bench.json", ("schema",)), ("bench.json", ("stages",)), ("bench.json", ("batch_size",)),
    ("bench.json", ("config",)), ("bench.json", ("stages", "model", "samples")),
]


def _wrong(value: Any) -> Any:
    """A value of another JSON type than ``value``."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, str):
        return 7
    if isinstance(value, (int, float)):
        return "7"
    if value is None:
        return [7]
    return "x"


# -------------------------------------------------------------------- the record


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from parity.records import record

    base = tmp_path_factory.mktemp("matrix")
    (base / "matrix_model.py").write_text(TARGET)
    target = f"{base / 'matrix_model.py'}:build"
    record(target, INPUTS, out=base / "golden", capture="full", bench=True)
    files = sorted(p.relative_to(base / "golden").as_posix() for p in (base / "golden").rglob("*") if p.is_file())
    assert files == FILES  # a new file in the format needs its rows in this matrix
    return base / "golden", target


def rehash(root: Path) -> None:
    manifest = json.loads((root / MANIFEST).read_text())
    finalize_manifest(root, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})


def write_json(root: Path, rel: str, doc: Any) -> None:
    """Replace a JSON file and re-hash, as a forger would (the manifest re-signs itself)."""
    if rel == MANIFEST:
        if isinstance(doc, dict):
            doc = {**doc, "manifest_sha256": manifest_digest(doc)}
        (root / rel).write_text(json.dumps(doc))
        return
    (root / rel).write_text(json.dumps(doc))
    rehash(root)


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


# -------------------------------------------------------------------- damage


def truncate(root: Path, rel: str) -> None:
    data = (root / rel).read_bytes()
    (root / rel).write_bytes(data[: len(data) // 2])


def flip(root: Path, rel: str) -> None:
    data = bytearray((root / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (root / rel).write_bytes(bytes(data))


def delete(root: Path, rel: str) -> None:
    (root / rel).unlink()


def symlink(root: Path, rel: str) -> None:
    """The file becomes a link to an identical copy outside: size and sha256 still match."""
    outside = root.parent / ("outside-" + rel.replace("/", "_"))
    shutil.copy(root / rel, outside)
    (root / rel).unlink()
    (root / rel).symlink_to(outside)


def delete_and_rehash(root: Path, rel: str) -> None:
    (root / rel).unlink()
    rehash(root)


def _forge(edit: Callable[[dict[str, Any], int], Any]) -> Callable[[Path, str], None]:
    def run(root: Path, rel: str) -> None:
        raw = (root / rel).read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
        new = edit(header, len(data))
        body = new if isinstance(new, bytes) else json.dumps(new).encode()
        size = struct.pack("<Q", 2**62) if new is None else struct.pack("<Q", len(body))
        (root / rel).write_bytes(size + (json.dumps(header).encode() if new is None else body) + data)
        rehash(root)
    return run


def _tensors(h: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((v for k, v in h.items() if k != "__metadata__"), key=lambda v: v["data_offsets"][0])


def _huge_shape(h: dict[str, Any], n: int) -> Any:
    _tensors(h)[0]["shape"] = [2**40, 2**40, 2**40]
    return h


def _past_end(h: dict[str, Any], n: int) -> Any:
    last = _tensors(h)[-1]
    last["data_offsets"] = [n + 64, n + 64 + last["data_offsets"][1] - last["data_offsets"][0]]
    return h


def _overlap(h: dict[str, Any], n: int) -> Any:
    first, second = _tensors(h)[:2]
    size = second["data_offsets"][1] - second["data_offsets"][0]
    second["data_offsets"] = [first["data_offsets"][0], first["data_offsets"][0] + size]
    return h


def _null_dtype(h: dict[str, Any], n: int) -> Any:
    _tensors(h)[0]["dtype"] = None
    return h


FORGERIES = {
    "huge-shape": _forge(_huge_shape), "header-2^62": _forge(lambda h, n: None), "past-end": _forge(_past_end),
    "overlap": _forge(_overlap), "null-dtype": _forge(_null_dtype), "not-json": _forge(lambda h, n: b"{not json"),
}


def _cases() -> list[Any]:
    cases = [pytest.param(f, how, id=f"{f}-{how.__name__}") for f in FILES for how in (truncate, flip, delete, symlink)]
    # bench.json is optional (a record made without --bench): removing it is no damage
    cases += [pytest.param(f, delete_and_rehash, id=f"{f}-delete-and-rehash") for f in FILES
              if f not in (MANIFEST, "bench.json")]
    for f in JSON_FILES:
        for name, doc in (("null", None), ("empty-object", {}), ("empty-list", [])):
            cases.append(pytest.param(f, lambda root, rel, doc=doc: write_json(root, rel, doc), id=f"{f}-{name}"))
    for f, path in FIELDS:
        def wrong(root: Path, rel: str, path: tuple[Any, ...] = path) -> None:
            doc = json.loads((root / rel).read_text())
            _set(doc, path, _wrong(_get(doc, path)))
            write_json(root, rel, doc)
        cases.append(pytest.param(f, wrong, id=f"{f}-wrong-type-{'.'.join(map(str, path))}"))
    for f in SAFETENSORS:
        for name, forge in FORGERIES.items():
            cases.append(pytest.param(f, forge, id=f"{f}-forged-{name}"))
    return cases


def test_untouched_copy_passes(golden: tuple[Path, str], run_cli, tmp_path: Path) -> None:
    """The harness itself: a faithful copy verifies (so a refusal below is the damage's doing)."""
    shutil.copytree(golden[0], tmp_path / "rec")
    code, out, err = run_cli("verify", tmp_path / "rec", golden[1], "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] in ("PASS", "PASS-with-warnings")


@pytest.mark.parametrize("rel, damage", _cases())
def test_damaged_record_is_refused_naming_the_file(golden: tuple[Path, str], run_cli, tmp_path: Path, rel: str,
                                                   damage: Callable[[Path, str], None]) -> None:
    root = tmp_path / "rec"
    shutil.copytree(golden[0], root)
    damage(root, rel)
    code, out, err = run_cli("verify", root, golden[1], "--json")
    assert code == 2, (code, out[:300], err)
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert Path(rel).name in err, err


# -------------------------------------------------------------------- fuzzing

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from parity.records import validate  # noqa: E402

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
SMALL = st.integers(0, 4)
TENSOR_INFO = st.fixed_dictionaries({
    "dtype": st.sampled_from([*validate.DTYPE_SIZES, "C128", "", None]),
    "shape": st.lists(SMALL | st.integers(-3, 2**70), max_size=3) | JSON_VALUES,
    "data_offsets": st.lists(st.integers(-2, 300), max_size=3) | JSON_VALUES,
})


def _write_safetensors(path: Path, header: Any, data: bytes, length: int | None = None) -> int:
    body = json.dumps(header).encode()
    raw = struct.pack("<Q", len(body) if length is None else length) + body + data
    path.write_bytes(raw)
    return len(raw)


@FUZZ
@given(header=st.dictionaries(st.text(min_size=1, max_size=6), TENSOR_INFO | JSON_VALUES, max_size=4),
       data=st.binary(max_size=300), length=st.none() | st.integers(0, 2**64 - 1))
def test_header_validator_accepts_only_what_safetensors_can_load(tmp_path: Path, header: Any, data: bytes,
                                                                  length: int | None) -> None:
    from safetensors import safe_open

    path = tmp_path / "x.safetensors"
    size = _write_safetensors(path, header, data, length)
    try:
        checked = validate.read_header(path, size)
    except validate.Invalid:
        return
    with safe_open(str(path), framework="pt") as f:  # what passed must load, exactly as declared
        for name, (_, shape, _, _) in checked.items():
            assert tuple(f.get_tensor(name).shape) == shape


@FUZZ
@given(shapes=st.lists(st.tuples(st.sampled_from(sorted(validate.DTYPE_SIZES)), st.lists(SMALL, max_size=3)),
                       max_size=5))
def test_header_validator_accepts_well_formed_files(tmp_path: Path, shapes: list[tuple[str, list[int]]]) -> None:
    header, offset = {}, 0
    for i, (dtype, shape) in enumerate(shapes):
        n = validate.DTYPE_SIZES[dtype]
        for d in shape:
            n *= d
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    path = tmp_path / "ok.safetensors"
    size = _write_safetensors(path, header, bytes(offset))
    assert set(validate.read_header(path, size)) == set(header)


CHECKS = {
    "manifest": validate.MANIFEST_SCHEMA, "env": validate.ENV_SCHEMA, "assets": validate.ASSETS_SCHEMA,
    "inputs": validate.inputs_check, "bench": validate.bench_check,
    "stages": validate.stages_check({"stages.safetensors": {"0/model": ("F32", (2,), 0, 8)}}),
    "layers": validate.layers_check({SHARD: {"t": ("F32", (2,), 0, 8)}}, "full", 64),
    "module_inputs": validate.module_inputs_check({SHARD: {"t": ("F32", (2,), 0, 8)}}),
}


@FUZZ
@given(which=st.sampled_from(sorted(CHECKS)), doc=JSON_VALUES)
def test_json_checks_raise_only_invalid(which: str, doc: Any) -> None:
    with contextlib.suppress(validate.Invalid):
        CHECKS[which](doc, "")


@st.composite
def _mutation(draw: Any) -> tuple[str, list[Any], Any]:
    """(JSON file, path inside it, new value): replaces one node of the real record."""
    rel = draw(st.sampled_from(JSON_FILES))
    return rel, draw(st.lists(st.integers(0, 50), max_size=5)), draw(JSON_VALUES)


def _replace(doc: Any, steps: list[int], value: Any) -> Any:
    """``doc`` with the node reached by ``steps`` (each picks a child by position) replaced."""
    if not steps or not isinstance(doc, (dict, list)) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[steps[0] % len(keys)]
    doc[key] = _replace(doc[key], steps[1:], value)
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(mutation=_mutation())
def test_readers_on_mutated_records_raise_only_record_errors(golden: tuple[Path, str], tmp_path_factory: Any,
                                                              mutation: tuple[str, list[Any], Any]) -> None:
    """Any node of any JSON file replaced by any JSON value, the record re-hashed: the
    open or the comparison refuses it with a RecordError, or the readers cope; nothing
    else (no KeyError, TypeError... from a reader trusting a field)."""
    from parity.comparison.verification import compare
    from parity.errors import ParityError
    from parity.records import load_module_inputs, load_record_inputs, read_record

    rel, steps, value = mutation
    root = tmp_path_factory.mktemp("fuzz") / "rec"
    shutil.copytree(golden[0], root)
    write_json(root, rel, _replace(json.loads((root / rel).read_text()), steps, value))
    try:
        rec = read_record(root)
        load_record_inputs(rec)
        for call in rec.json("module_inputs.json"):
            load_module_inputs(rec, call["key"], call["batch"])
        compare(golden[0], root)
        compare(root, golden[0])
    except ParityError:
        pass
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
