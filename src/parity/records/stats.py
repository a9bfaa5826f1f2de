"""Per-tensor summaries: stats, content hash and a seeded sample of elements.

The sample indices are a pure function of (numel, seed, size) computed with
splitmix64 in plain Python, so B re-reads exactly A's positions whatever its numpy
or torch version.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np

SAMPLE_SIZE = 64
_BLOCK = 4096  # uint32 words per hashed block
_CHUNK_BYTES = 1 << 20  # cache-sized piece of a tensor, a whole number of hash blocks
_MASK = (1 << 64) - 1
_CANCEL = 1e-6  # var below this fraction of mean^2 is recomputed exactly (cancellation)


def _splitmix64(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & _MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return state, z ^ (z >> 31)


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
        picked = array[np.asarray(sample_indices(flat.numel(), seed, size), dtype=np.int64)]
        return torch.from_numpy(picked.view(np.uint8).copy()).view(flat.dtype)
    idx = _index_tensor(flat.numel(), seed, size, flat.device)
    return flat.index_select(0, idx).cpu()


def cpu_copy(t: Any) -> Any:
    """A private, contiguous CPU copy of ``t``. On CPU the bytes are copied by numpy:
    one memcpy, no intra-op thread pool (which costs milliseconds per op when the
    machine is busy)."""
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        return t.to("cpu", copy=True).contiguous()
    flat = t.reshape(-1)
    raw = flat.view(torch.uint8).numpy().copy() if flat.numel() else np.zeros(0, np.uint8)
    return torch.from_numpy(raw).view(t.dtype).reshape(t.shape)


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


@functools.lru_cache(maxsize=1)
def _hash_keys() -> Any:
    """A fixed vector of odd 32-bit keys (splitmix64 from a fixed seed, so every machine
    and numpy version gets the same)."""
    state, words = 0x5EED0001, []
    for _ in range(_BLOCK):
        state, z = _splitmix64(state)
        words.append((z & 0xFFFFFFFF) | 1)
    return np.asarray(words, dtype="<u4")


def content_hash(t: Any) -> str:
    """Content hash (hex) of a tensor's raw bytes in row-major order; dtype and shape are
    not included.

    Bytes are read as little-endian uint32 words in blocks of 4096; each block is reduced
    with a fixed multilinear hash mod 2^32 (sum of word * odd key: exact integer
    arithmetic, so identical on every machine, and one SIMD pass several times faster
    than sha256 over the data), and sha256 is taken over those block hashes and the
    remaining tail bytes. A change in any single word always changes the hash; this is
    for telling tensors apart, not a defence against crafted collisions.
    """
    return summarize(t, with_stats=False)[1]


def summarize(t: Any, with_stats: bool = True) -> tuple[dict[str, Any] | None, str]:
    """(stats or None, content hash) of a tensor in one pass over its memory.

    The bytes are walked in 1 MiB chunks; each chunk is hashed and reduced (min, max,
    sum, sum of squares) while it is in cache, so a tensor is read from memory once
    instead of five times. Same results as :func:`tensor_stats` and the hash above.
    """
    import torch

    flat = t.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    raw = flat.contiguous().view(torch.uint8).numpy() if flat.numel() else np.zeros(0, np.uint8)
    values_dtype = _stats_dtype(flat) if with_stats else None
    main = (raw.size // (4 * _BLOCK)) * 4 * _BLOCK
    digest = hashlib.sha256(b"parity-mlh32")
    hashes, moments = _scan(raw, 0, raw.size, main, values_dtype)
    for h in hashes:
        digest.update(h)
    digest.update(raw[main:].tobytes())
    if not with_stats:
        return None, digest.hexdigest()
    if values_dtype is None:  # bfloat16 and friends: numpy has no such dtype
        return tensor_stats(flat), digest.hexdigest()
    return _stats_from_moments(moments, raw, values_dtype, flat), digest.hexdigest()


def _scan(raw: Any, start: int, stop: int, main: int, values_dtype: Any) -> tuple[list[bytes], list[float]]:
    """Block hashes and moments of ``raw[start:stop]``, chunk by chunk."""
    keys = _hash_keys()
    hashes: list[bytes] = []
    moments = [math.inf, -math.inf, 0.0, 0.0]
    for begin in range(start, stop, _CHUNK_BYTES):
        chunk = raw[begin:min(begin + _CHUNK_BYTES, stop)]
        hashed = min(chunk.size, max(main - begin, 0))
        if hashed:
            words = chunk[:hashed].view("<u4").reshape(-1, _BLOCK)
            hashes.append(np.einsum("ij,j->i", words, keys).astype("<u4").tobytes())
        if values_dtype is not None:
            _combine(moments, list(_numpy_moments(_as_float(chunk.view(values_dtype)))))
    return hashes, moments


def _combine(total: list[float], part: list[float]) -> None:
    total[0] = min(total[0], part[0])
    total[1] = max(total[1], part[1])
    total[2] += part[2]
    total[3] += part[3]


def _stats_dtype(flat: Any) -> Any:
    """The numpy dtype to read the raw bytes as for stats, or None (no numpy twin)."""
    if flat.numel() == 0 or flat.is_complex() or flat.dtype not in _numpy_dtypes():
        return None
    return flat[:1].numpy().dtype


def _as_float(values: Any) -> Any:
    if values.dtype in (np.float32, np.float64):
        return values
    return values.astype(np.float64 if values.dtype.kind in "iub" else np.float32)


def _stats_from_moments(moments: list[float], raw: Any, values_dtype: Any, flat: Any) -> dict[str, Any] | None:
    if flat.numel() == 0:
        return None
    values = raw.view(values_dtype)
    if not all(math.isfinite(v) for v in moments):
        return _with_nonfinite(_as_float(values))
    return _finish((moments[0], moments[1], moments[2], moments[3]), values.size,
                   lambda: float(np.var(_as_float(values), dtype=np.float64)))


def tensor_stats(t: Any) -> dict[str, Any] | None:
    """{min,max,mean,std,l2,nan,inf} of a real tensor (std is the population std,
    min..l2 over finite elements only), None for empty/complex/unsupported tensors."""
    if t.numel() == 0 or t.is_complex() or t.is_sparse or t.is_quantized:
        return None
    flat = t.detach().reshape(-1)
    array = _numpy_view(flat)
    if array is None:
        return _torch_stats(flat)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64 if array.dtype.kind in "iub" else np.float32)
    moments = _numpy_moments(array)
    if not all(math.isfinite(v) for v in moments):
        return _with_nonfinite(array)
    return _finish(moments, array.size, lambda: float(np.var(array, dtype=np.float64)))


def _numpy_moments(a: Any) -> tuple[float, float, float, float]:
    """min, max, sum, sum of squares: four SIMD passes at memory speed (the fastest
    numpy spelling of each, measured: einsum for the sum, BLAS dot for the squares),
    accumulated in the tensor's own precision (float32 for float32)."""
    return float(a.min()), float(a.max()), float(np.einsum("i->", a)), float(np.dot(a, a))


def _finish(moments: tuple[float, float, float, float], n: int, exact_var: Any,
            nan: int = 0, inf: int = 0) -> dict[str, Any]:
    mn, mx, s, sq = moments
    mean = s / n
    var = max(sq / n - mean * mean, 0.0)
    if var < _CANCEL * mean * mean:  # sum of squares cancelled against the mean: recompute
        var = exact_var()
    return {"min": mn, "max": mx, "mean": mean, "std": math.sqrt(var), "l2": math.sqrt(sq), "nan": nan, "inf": inf}


def _with_nonfinite(values: Any) -> dict[str, Any]:
    """Stats of the finite elements (in float64) plus NaN and Inf counts."""
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    finite = values[np.isfinite(values)].astype(np.float64)
    if finite.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "l2": None, "nan": nan, "inf": inf}
    return _finish(_numpy_moments(finite), finite.size, lambda: float(np.var(finite)), nan, inf)


def _torch_stats(flat: Any) -> dict[str, Any]:
    """The same on an accelerator (or a dtype numpy lacks): four reductions, one transfer."""
    import torch

    if not flat.is_floating_point():
        flat = flat.double()
    elif flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    mn, mx, s, sq = torch.stack([flat.min(), flat.max(), flat.sum(), torch.dot(flat, flat)]).tolist()
    if not all(math.isfinite(v) for v in (mn, mx, s, sq)):
        return _with_nonfinite(flat.double().cpu().numpy())
    return _finish((mn, mx, s, sq), flat.numel(), lambda: float(flat.double().var(correction=0)))
