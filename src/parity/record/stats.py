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

SAMPLE_SIZE = 64
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
    idx = _index_tensor(flat.numel(), seed, size, flat.device)
    return flat.index_select(0, idx).cpu()


def content_hash(t: Any) -> str:
    """sha256 (hex) of a tensor's raw bytes in row-major order (dtype/shape not included)."""
    import torch

    flat = t.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    if flat.numel() == 0:
        return hashlib.sha256(b"").hexdigest()
    data = flat.contiguous().view(torch.uint8).numpy()
    return hashlib.sha256(memoryview(data)).hexdigest()


def tensor_stats(t: Any) -> dict[str, Any] | None:
    """{min,max,mean,std,l2,nan,inf} of a real tensor (std is the population std,
    min..l2 over finite elements only), None for empty/complex/unsupported tensors."""
    import torch

    if t.numel() == 0 or t.is_complex() or t.is_sparse or t.is_quantized:
        return None
    flat = t.detach().reshape(-1)
    if not flat.is_floating_point():
        flat = flat.double()
    elif flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    # Four reductions stacked so there is one device->host transfer per tensor.
    mn, mx, s, sq = torch.stack([flat.min(), flat.max(), flat.sum(), torch.dot(flat, flat)]).tolist()
    nan = inf = 0
    if not all(math.isfinite(v) for v in (mn, mx, s, sq)):
        nan, inf = int(torch.isnan(flat).sum()), int(torch.isinf(flat).sum())
        flat = flat[torch.isfinite(flat)].double()
        if flat.numel() == 0:
            return {"min": None, "max": None, "mean": None, "std": None, "l2": None, "nan": nan, "inf": inf}
        mn, mx, s, sq = torch.stack([flat.min(), flat.max(), flat.sum(), torch.dot(flat, flat)]).tolist()
    n = flat.numel()
    mean = s / n
    var = max(sq / n - mean * mean, 0.0)
    if var < _CANCEL * mean * mean:
        var = float(flat.double().var(correction=0))
    return {"min": mn, "max": mx, "mean": mean, "std": math.sqrt(var), "l2": math.sqrt(sq),
            "nan": nan, "inf": inf}
