"""Per-tensor summaries: stats, content hash, a seeded sample of elements and, at
capture=stats, a linear sketch of the whole tensor (docs/stats-sketch.md).

The sample indices are a pure function of (numel, seed, size) computed with
splitmix64 in plain Python, so B re-reads exactly A's positions whatever its numpy
or torch version. The sketch's seed is a pure function of the layer key
(:func:`sketch_seed`), so A and B hash every element alike.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import zlib
from typing import Any

import numpy as np

from parity.records import native
from parity.records.flatten import strip_wrapper_prefix
from parity.records.hashdef import BLOCK as _BLOCK
from parity.records.hashdef import MASK as _MASK
from parity.records.hashdef import hash_keys as _hash_keys
from parity.records.hashdef import splitmix64 as _splitmix64

SAMPLE_SIZE = 64
#: names the sketch's definition (rows x buckets, chunking, hashes, stored as float32 LE)
SKETCH_SCHEME = f"cs{native.SKETCH_ROWS}x{native.SKETCH_BUCKETS}-f32le"
#: the base64 fields of an entry's sketch: the sketch, per bucket the sum of x^2
SKETCH_PARTS = ("values", "sq")
_CANCEL = 1e-6  # var below this fraction of mean^2 is recomputed exactly (cancellation)


@functools.lru_cache(maxsize=4096)
def sample_indices(numel: int, seed: int = 0, size: int = SAMPLE_SIZE) -> tuple[int, ...]:
    """Sorted, distinct flat indices of the sample: all of them when ``numel <= size``."""
    if numel <= size:
        return tuple(range(numel))
    state = (seed * 0x100000001B3 + numel) & _MASK
    chosen: set[int] = set()
    while len(chosen) < size:
        state, z = _splitmix64(state)
        chosen.add(z % numel)
    return tuple(sorted(chosen))


@functools.lru_cache(maxsize=4096)
def _index_tensor(numel: int, seed: int, size: int, device: Any) -> Any:
    import torch

    return torch.tensor(sample_indices(numel, seed, size), dtype=torch.long, device=device)


def take_sample(flat: Any, seed: int, size: int = SAMPLE_SIZE) -> Any:
    """The sampled elements of a flattened tensor, copied to CPU (safe against in-place ops)."""
    import torch

    array = _numpy_view(flat)
    if array is not None:
        picked = array[_index_array(flat.numel(), seed, size)]
        return torch.from_numpy(picked.view(np.uint8).copy()).view(flat.dtype)
    idx = _index_tensor(flat.numel(), seed, size, flat.device)
    return flat.index_select(0, idx).cpu()


@functools.lru_cache(maxsize=4096)
def _index_array(numel: int, seed: int, size: int) -> Any:
    return np.asarray(sample_indices(numel, seed, size), dtype=np.int64)


def _numpy_view(flat: Any) -> Any:
    """A zero-copy numpy view of a flat CPU tensor whose dtype numpy has, else None."""
    if flat.device.type != "cpu" or flat.dtype not in _numpy_dtypes():
        return None
    try:
        return flat.detach().numpy()
    except (RuntimeError, TypeError):  # conjugate/negative views, tensor subclasses
        return None


@functools.lru_cache(maxsize=1)
def _numpy_dtypes() -> frozenset[Any]:
    import torch

    return frozenset({torch.float16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
                      torch.int64, torch.uint8, torch.bool})


def content_hash(t: Any) -> str:
    """Content hash (hex) of a tensor's raw bytes in row-major order; dtype and shape are
    not included.

    Bytes are read as little-endian uint32 words in blocks of 4096; each block is reduced
    with a fixed multilinear hash mod 2^32 (sum of word * odd key: exact integer
    arithmetic, so identical on every machine and device, and one SIMD pass several
    times faster than sha256 over the data), and sha256 is taken over those block
    hashes and the remaining tail bytes. A change in any single word always changes the
    hash; this is for telling tensors apart, not a defence against crafted collisions.
    """
    import torch

    flat = t.detach().reshape(-1)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    raw = flat.view(torch.uint8) if flat.numel() else torch.zeros(0, dtype=torch.uint8)
    main = (raw.numel() // (4 * _BLOCK)) * 4 * _BLOCK
    digest = hashlib.sha256(b"parity-mlh32")
    if raw.device.type == "cpu":
        data = raw.numpy()
        if main:
            digest.update(_host_block_hashes(data[:main].view("<u4").reshape(-1, _BLOCK)))
        digest.update(data[main:].tobytes())
    else:  # on the device: only the block hashes and the tail cross to the host
        if main:
            digest.update(_device_block_hashes(raw[:main]))
        digest.update(raw[main:].cpu().numpy().tobytes())
    return digest.hexdigest()


def _host_block_hashes(words: Any) -> bytes:
    """Block hashes of a (blocks, 4096) uint32 array, on this thread. (Splitting it over
    a second thread was measured slower inside a forward: torch's OpenMP workers spin
    on the other core for milliseconds after each op.)"""
    fast = native.kernel()
    if fast is not None and words.flags.c_contiguous:
        return bytes(fast.block_hashes(words).tobytes())
    return bytes(np.einsum("ij,j->i", words, _hash_keys()).astype("<u4").tobytes())


def _device_block_hashes(raw: Any) -> bytes:
    """The block hashes of ``content_hash`` computed with torch integer ops on
    ``raw``'s device: int32 products and sums wrap mod 2^32 exactly like the uint32
    arithmetic on the host (two's complement), so the bytes are the same."""
    import torch

    words = raw.view(torch.int32).reshape(-1, _BLOCK)
    keys = _device_keys(str(raw.device))
    blocks = (words * keys).sum(dim=1, dtype=torch.int32)
    return bytes(blocks.cpu().numpy().astype("<i4").tobytes())


@functools.lru_cache(maxsize=8)
def _device_keys(device: str) -> Any:
    import torch

    return torch.from_numpy(_hash_keys().view("<i4").copy()).to(device)


def summarize(t: Any, with_stats: bool = True) -> tuple[dict[str, Any] | None, str]:
    """(stats or None, content hash) of a tensor: :func:`tensor_stats` and
    :func:`content_hash` of the same values, on the tensor's own device (a CUDA tensor
    is not copied to the host for either). The hash goes first: a fresh layer output
    often is not in cache (large kernels write around it), and the hash's one pass
    brings it in for the reductions that follow (measured 10-20% faster than the
    other order inside a forward)."""
    flat = t.detach().reshape(-1)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    digest = content_hash(flat)
    return (tensor_stats(flat) if with_stats else None), digest


def tensor_stats(t: Any) -> dict[str, Any] | None:
    """{min,max,mean,std,l2,l1,nan,inf} of a tensor (std is the population std, min..l1
    over finite elements only, l1 the sum of absolute values; a complex tensor's over its
    real and imaginary parts), None for empty/unsupported tensors.

    Five torch reductions (aminmax, sum, dot, abs-sum), vectorised and on torch's own intra-op
    threads and device, read back in one transfer; float32 accumulates in float32,
    integers and bool in float64, float16/bfloat16 in float32."""
    import torch

    if t.numel() == 0 or t.is_sparse or t.is_quantized:
        return None
    if t.is_complex():  # over the real and imaginary parts: l2 is the complex norm
        t = torch.view_as_real(t.detach().resolve_conj())
    flat = t.detach().reshape(-1)
    if not flat.is_floating_point():
        flat = flat.double()
    elif flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    mn, mx = torch.aminmax(flat)
    moments = torch.stack([mn, mx, flat.sum(), torch.dot(flat, flat), flat.abs().sum()]).tolist()
    if not all(math.isfinite(v) for v in moments):
        return _with_nonfinite(flat.double().cpu().numpy())
    return _finish(moments, flat.numel(), lambda: float(flat.double().var(correction=0)))


def _finish(moments: list[float], n: int, exact_var: Any, nan: int = 0, inf: int = 0) -> dict[str, Any]:
    mn, mx, s, sq, l1 = moments
    mean = s / n
    var = max(sq / n - mean * mean, 0.0)
    if var < _CANCEL * mean * mean:  # sum of squares cancelled against the mean: recompute
        var = exact_var()
    return {"min": mn, "max": mx, "mean": mean, "std": math.sqrt(var), "l2": math.sqrt(sq), "l1": l1,
            "nan": nan, "inf": inf}


def _with_nonfinite(values: Any) -> dict[str, Any]:
    """Stats of the finite elements (in float64) plus NaN and Inf counts."""
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "l2": None, "l1": None, "nan": nan,
                "inf": inf}
    moments = [float(finite.min()), float(finite.max()), float(finite.sum()), float(np.dot(finite, finite)),
               float(np.abs(finite).sum())]
    return _finish(moments, finite.size, lambda: float(np.var(finite)), nan, inf)


class Summary:
    """One tensor's summary as a capture hook reads it: ``shape``, ``dtype``, ``stats``
    and the ``sample`` are final; the content hash is finished on first use of
    :attr:`hash`, after the forward (the hook keeps only the block hashes and tail), and
    the sketch's JSON form on first use of :attr:`sketch`."""

    __slots__ = ("_blocks", "_hash", "_sketch", "_sketch_seed", "_tail", "blob", "dtype", "sample", "shape",
                 "stats")

    def __init__(self, shape: Any, dtype: Any, stats: dict[str, Any] | None, sample: Any,
                 blocks: Any = None, tail: bytes | None = b"", digest: str | None = None,
                 sketch: Any = None, sketch_seed: int | None = None) -> None:
        self.shape, self.dtype, self.stats, self.sample = shape, dtype, stats, sample
        self._blocks, self._tail, self._hash = blocks, tail, digest
        self._sketch, self._sketch_seed = sketch, sketch_seed
        self.blob: str | None = None  # where capture stored the tensor or its sample

    @property
    def sketch(self) -> dict[str, Any] | None:
        """``{"scheme", "seed", "values", "sq"}`` (each base64 of rows x buckets float32:
        the sketch, and per bucket the sum of x^2 of the elements it holds), or None
        (no seed given, not a finite floating-point CPU tensor)."""
        raw = self._sketch
        if raw is None or isinstance(raw, dict):
            return raw
        stats = self.stats
        if self._sketch_seed is None or not np.isfinite(raw).all() or (stats and (stats["nan"] or stats["inf"])):
            self._sketch = None
        else:
            parts = (raw + 0.0).astype("<f4").reshape(len(SKETCH_PARTS), -1)
            self._sketch = {"scheme": SKETCH_SCHEME, "seed": self._sketch_seed,
                            **{name: base64.b64encode(part.tobytes()).decode("ascii")
                               for name, part in zip(SKETCH_PARTS, parts)}}
        return self._sketch

    @property
    def hash(self) -> str | None:
        if self._hash is None and self._tail is not None:
            digest = hashlib.sha256(b"parity-mlh32")
            if self._blocks is not None:
                digest.update(self._blocks.astype("<u4").tobytes())
            digest.update(self._tail)
            self._hash, self._blocks, self._tail = digest.hexdigest(), None, None
        return self._hash


def read_summary(t: Any, with_stats: bool = True, seed: int | None = 0, size: int = SAMPLE_SIZE,
                 sketch_seed: int | None = None) -> Summary:
    """The :class:`Summary` of ``t`` now (before any later in-place op), with its seeded
    sample unless ``seed`` is None and, with a ``sketch_seed`` (:func:`sketch_seed`),
    its sketch. Same figures as :func:`summarize` and :func:`take_sample`.

    Inside a forward every Python-level operation runs with cold caches (the model's
    kernels evict the interpreter's working set; measured 3-10x slower than in a loop),
    so a CPU tensor numpy can view takes a short path of about twenty operations: one
    zero-copy view, one pass of the compiled kernel (:mod:`parity.records.native`) for
    the hash blocks and, for float32, the stats, and one fancy index for the sample.
    Without the kernel, or for other dtypes, the hash blocks are one einsum and the
    four reductions run in torch (its threads are awake while the model runs).
    Everything else (accelerators, bfloat16, complex, empty) takes :func:`summarize`.
    The sketch is taken of finite floating-point CPU tensors (in float32: the kernel's
    pass for float32, a converted copy for the others); accelerator tensors get none.
    """
    if t.is_sparse or t.is_quantized:
        return Summary(t.shape, t.dtype, None, None, tail=None)
    try:
        array = t.numpy()  # raises for CUDA, bfloat16, conj/neg views and tensors that require grad
    except (TypeError, RuntimeError):
        array = None
    if array is None or array.size == 0 or array.dtype.kind == "c":
        stats, digest = summarize(t, with_stats)
        sample = take_sample(t.detach().reshape(-1), seed, size) if seed is not None and t.numel() else None
        sketch = None
        if sketch_seed is not None and t.is_floating_point() and t.device.type == "cpu" and t.numel():
            sketch = sketch_of(t.detach().reshape(-1).float().contiguous().numpy(), sketch_seed)
        return Summary(t.shape, t.dtype, stats, sample, digest=digest, tail=None, sketch=sketch,
                       sketch_seed=sketch_seed)
    flat = array.reshape(-1)  # a view, or a private copy of a non-contiguous tensor
    if not flat.flags.c_contiguous:  # a strided 1-D tensor reshapes to a strided view
        flat = np.ascontiguousarray(flat)
    raw = flat.view(np.uint8)
    nbytes = raw.size
    main = nbytes - nbytes % (4 * _BLOCK)
    tail = raw[main:].tobytes() if main != nbytes else b""
    fast = native.kernel()
    if fast is not None and with_stats and flat.dtype == np.float32:  # one pass for all of it
        blocks, moments, sketch = fast.f32_summary_sketch(flat, _BLOCK, sketch_seed)
        stats = (_finish(moments, flat.size, lambda: float(np.var(flat, dtype=np.float64)))
                 if math.isfinite(moments[3]) else _with_nonfinite(flat.astype(np.float64)))
    else:
        blocks = None
        if main:
            words = raw[:main].view("<u4").reshape(-1, _BLOCK)
            blocks = fast.block_hashes(words) if fast is not None else np.einsum("ij,j->i", words, _hash_keys())
        stats = _flat_stats(flat) if with_stats else None
        sketch = sketch_of(flat, sketch_seed) if sketch_seed is not None and flat.dtype.kind == "f" else None
    sample = flat[_index_array(flat.size, seed, size)] if seed is not None else None
    return Summary(t.shape, t.dtype, stats, sample, blocks, tail, sketch=sketch, sketch_seed=sketch_seed)


@functools.lru_cache(maxsize=65536)
def sketch_seed(module: str, call: int, out: str) -> int:
    """The sketch seed of a layer key: crc32 of the key without wrapper prefixes, so a
    wrapped and an unwrapped model (DDP ``module.``, ``torch.compile``) hash alike."""
    return zlib.crc32(strip_wrapper_prefix(f"{module}#{call}{out}").encode("utf-8"))


def sketch_of(flat: Any, seed: int) -> Any:
    """The sketch (float64, rows x buckets flat) of a 1-D real numpy array, taken of its
    float32 values: the compiled kernel's, or the numpy path's (the same bits)."""
    values = np.ascontiguousarray(flat, dtype=np.float32)
    fast = native.kernel()
    return fast.f32_sketch(values, seed) if fast is not None else native.sketch_numpy(values, seed)


def decode_sketch(entry_sketch: Any) -> tuple[Any, ...]:
    """(sketch, sums of x^2), each a (rows, buckets) float64 array, of a layer entry's
    validated ``sketch``."""
    shape = (native.SKETCH_ROWS, native.SKETCH_BUCKETS)
    return tuple(np.frombuffer(base64.b64decode(entry_sketch[name], validate=True), dtype="<f4")
                 .astype(np.float64).reshape(shape) for name in SKETCH_PARTS)


def _flat_stats(flat: Any) -> dict[str, Any]:
    """:func:`tensor_stats` of a flat, non-empty, real numpy array (shared memory)."""
    import torch

    values = torch.from_numpy(flat)
    kind = flat.dtype.kind
    if kind != "f":
        values = values.double()
    elif flat.dtype.itemsize == 2:
        values = values.float()
    mn, mx = torch.aminmax(values)
    moments = torch.stack([mn, mx, values.sum(), torch.dot(values, values), values.abs().sum()]).tolist()
    if not math.isfinite(moments[3]):  # any NaN or Inf makes the sum of squares non-finite
        return _with_nonfinite(flat.astype(np.float64))
    return _finish(moments, flat.size, lambda: float(np.var(flat, dtype=np.float64)))
