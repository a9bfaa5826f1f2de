"""Error metrics between a reference tensor ``a`` (environment A) and ``b`` (B).

One call to :func:`compare_tensors` gives every number the reports show: max and mean
absolute error, relative L2 error, cosine similarity, the fraction of elements failing
Polygraphy's rule (``|a-b| > atol`` **and** ``|a-b| > rtol*|a|``) and NaN/Inf
disagreements. Integer and bool tensors are compared exactly.

Speed matters (a full record holds gigabytes of activations), so the data are walked
once, in cache-sized chunks, with one reused scratch buffer: the dot products come from
BLAS without temporaries, and the element-wise tolerance test only runs on the few
elements whose absolute error already exceeds ``atol``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

#: Elements per chunk: 256 Ki float32 = 1 MiB, so the scratch buffer stays in cache.
CHUNK = 1 << 18


@dataclass(frozen=True)
class TensorMetrics:
    """How far ``b`` is from the reference ``a``.

    The raw sums are kept so that metrics of several batches of one layer can be
    merged exactly (:meth:`merge`). ``comparable`` is false when the shapes differ; then
    every metric is ``None`` and ``ok`` is false. Non-finite positions where A and B
    agree (both NaN, or the same infinity) are excluded from the error sums.
    """

    numel: int
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    atol: float
    rtol: float
    exact: bool = False
    mismatches: int = 0
    nonfinite_mismatches: int = 0
    max_abs: float | None = 0.0
    sum_abs: float = 0.0
    sum_sq_diff: float = 0.0
    sum_sq_a: float = 0.0
    sum_sq_b: float = 0.0
    dot_ab: float = 0.0

    @property
    def comparable(self) -> bool:
        return self.shape_a == self.shape_b

    @property
    def dtype_mismatch(self) -> bool:
        return self.dtype_a != self.dtype_b

    @property
    def ok(self) -> bool:
        """True when shapes and dtypes agree and no element fails the tolerance rule."""
        return self.comparable and not self.dtype_mismatch and self.mismatches == 0

    @property
    def mean_abs(self) -> float | None:
        if not self.comparable:
            return None
        return self.sum_abs / self.numel if self.numel else 0.0

    @property
    def rel_l2(self) -> float | None:
        """``||a-b|| / ||a||``; 0 when both are zero, inf when only ``a`` is zero."""
        if not self.comparable:
            return None
        if self.sum_sq_a == 0.0:
            return 0.0 if self.sum_sq_diff == 0.0 else math.inf
        return math.sqrt(self.sum_sq_diff / self.sum_sq_a)

    @property
    def cosine(self) -> float | None:
        """Cosine similarity of the flattened tensors; 1.0 when both are all zero."""
        if not self.comparable:
            return None
        if self.sum_sq_a == 0.0 or self.sum_sq_b == 0.0:
            return 1.0 if self.sum_sq_a == self.sum_sq_b else 0.0
        return max(-1.0, min(1.0, self.dot_ab / math.sqrt(self.sum_sq_a * self.sum_sq_b)))

    @property
    def mismatch_frac(self) -> float | None:
        if not self.comparable:
            return None
        return self.mismatches / self.numel if self.numel else 0.0

    def merge(self, other: TensorMetrics) -> TensorMetrics:
        """Metrics of the concatenation of both pairs (e.g. two batches of one layer)."""
        if not (self.comparable and other.comparable):
            return self if not self.comparable else other
        max_abs = max(self.max_abs or 0.0, other.max_abs or 0.0)
        return replace(
            self,
            numel=self.numel + other.numel,
            mismatches=self.mismatches + other.mismatches,
            nonfinite_mismatches=self.nonfinite_mismatches + other.nonfinite_mismatches,
            max_abs=max_abs,
            sum_abs=self.sum_abs + other.sum_abs,
            sum_sq_diff=self.sum_sq_diff + other.sum_sq_diff,
            sum_sq_a=self.sum_sq_a + other.sum_sq_a,
            sum_sq_b=self.sum_sq_b + other.sum_sq_b,
            dot_ab=self.dot_ab + other.dot_ab,
            dtype_b=self.dtype_b if self.dtype_b == other.dtype_b else f"{self.dtype_b}|{other.dtype_b}",
        )

    def to_json(self) -> dict[str, Any]:
        """The ``metrics`` object of parity.verify/1 plus counts; non-finite floats become null."""
        return {
            "max_abs": _finite(self.max_abs if self.comparable else None),
            "mean_abs": _finite(self.mean_abs),
            "rel_l2": _finite(self.rel_l2),
            "cosine": _finite(self.cosine),
            "mismatch_frac": _finite(self.mismatch_frac),
            "mismatches": self.mismatches,
            "nonfinite_mismatches": self.nonfinite_mismatches,
            "numel": self.numel,
            "shape_a": list(self.shape_a),
            "shape_b": list(self.shape_b),
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "exact": self.exact,
        }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def compare_tensors(a: Any, b: Any, atol: float, rtol: float) -> TensorMetrics:
    """Compare ``b`` against the reference ``a`` (torch tensors or numpy arrays).

    Float tensors use Polygraphy's rule with ``atol``/``rtol``; integer and bool tensors
    are compared exactly (tolerances ignored). Mixed float dtypes (float32 in A, float16
    in B) are compared in float32 and flagged by ``dtype_mismatch``. Shape mismatches
    return metrics with ``comparable`` false instead of raising. While it runs, torch's
    intra-op thread count is 1 (process-wide; restored on return).
    """
    import torch

    ta, tb = _as_tensor(a), _as_tensor(b)
    base = dict(
        shape_a=tuple(ta.shape), shape_b=tuple(tb.shape),
        dtype_a=_dtype_name(ta.dtype), dtype_b=_dtype_name(tb.dtype),
    )
    if ta.shape != tb.shape:
        return TensorMetrics(numel=ta.numel(), atol=atol, rtol=rtol, max_abs=None, **base)  # type: ignore[arg-type]
    if ta.is_complex() or tb.is_complex():  # real and imaginary parts compared as pairs
        ta, tb = _real_pairs(ta), _real_pairs(tb)
    exact = not (ta.is_floating_point() or ta.is_complex()) and not (tb.is_floating_point() or tb.is_complex())
    if exact:
        atol, rtol = 0.0, 0.0
    work = torch.float64 if exact or torch.float64 in (ta.dtype, tb.dtype) else torch.float32
    sums = _Sums()
    fa, fb = ta.detach().reshape(-1), tb.detach().reshape(-1)
    size = min(CHUNK, max(fa.numel(), 1))
    scratch, thresholds = torch.empty(size, dtype=work), torch.empty(size, dtype=work)
    with _one_thread():
        for start in range(0, fa.numel(), CHUNK):
            ca, cb = fa[start : start + CHUNK], fb[start : start + CHUNK]
            if ca.dtype != work:
                ca = ca.to(work)
            if cb.dtype != work:
                cb = cb.to(work)
            _chunk(ca, cb, scratch[: ca.numel()], thresholds[: ca.numel()], atol, rtol, sums)
    if exact:  # count on the integers themselves: float64 cannot tell apart ids above 2**53
        sums.mismatches = int(torch.ne(fa, fb).sum())
    return TensorMetrics(
        numel=fa.numel(), atol=atol, rtol=rtol, exact=exact, mismatches=sums.mismatches,
        nonfinite_mismatches=sums.nonfinite, max_abs=sums.max_abs, sum_abs=sums.sum_abs,
        sum_sq_diff=sums.sq_diff, sum_sq_a=sums.sq_a, sum_sq_b=sums.sq_b, dot_ab=sums.dot, **base,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the chunk loop on one intra-op thread, restoring the caller's setting.

    The chunks are cache-sized and memory-bound: a second thread gains nothing, and
    on a shared machine a descheduled worker stalls every op at its barrier (measured
    here: 40 us -> 7 ms per op). Setting the thread count costs under a microsecond.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Sums:
    """Running float64 accumulators (Python floats) across chunks."""

    __slots__ = ("dot", "max_abs", "mismatches", "nonfinite", "sq_a", "sq_b", "sq_diff", "sum_abs")

    def __init__(self) -> None:
        self.mismatches = self.nonfinite = 0
        self.max_abs = self.sum_abs = self.sq_diff = self.sq_a = self.sq_b = self.dot = 0.0


def _chunk(ca: Any, cb: Any, d: Any, t: Any, atol: float, rtol: float, s: _Sums) -> None:
    """Accumulate one chunk into ``s``; ``d`` and ``t`` are scratch buffers of the chunk's size."""
    import torch

    sq_a, sq_b, dot = float(torch.dot(ca, ca)), float(torch.dot(cb, cb)), float(torch.dot(ca, cb))
    if not (math.isfinite(sq_a) and math.isfinite(sq_b) and math.isfinite(dot)):
        # Rare: NaN/Inf present (or float32 overflow). Zero the non-finite positions in
        # private copies, count those where A and B disagree, then take the normal path.
        ca, cb, sq_a, sq_b, dot = _mask_nonfinite(ca, cb, s)
    torch.sub(ca, cb, out=d)
    s.sq_diff += float(torch.dot(d, d))
    d.abs_()
    s.sum_abs += float(d.sum())  # torch sums in cascade: float32 is accurate per chunk
    chunk_max = float(d.max()) if d.numel() else 0.0
    s.max_abs = max(s.max_abs, chunk_max)
    s.sq_a, s.sq_b, s.dot = s.sq_a + sq_a, s.sq_b + sq_b, s.dot + dot
    if chunk_max > atol:
        # |d| > atol and |d| > rtol*|a|  <=>  |d| - max(atol, rtol*|a|) > 0, all in place
        # in t; counting positives as sum(sign(relu(.))) is ~2x faster than a bool mask.
        torch.abs(ca, out=t)
        t.mul_(rtol).clamp_(min=atol)
        torch.sub(d, t, out=t)
        s.mismatches += int(t.clamp_(min=0).sign_().sum())


def _mask_nonfinite(ca: Any, cb: Any, s: _Sums) -> tuple[Any, Any, float, float, float]:
    import torch

    bad = ~(torch.isfinite(ca) & torch.isfinite(cb))
    idx = bad.nonzero().squeeze(1)  # usually few: the agreement test runs on those alone
    xa, xb = ca.index_select(0, idx), cb.index_select(0, idx)
    agree = (xa.isnan() & xb.isnan()) | (xa == xb)  # both NaN, or the same infinity
    disagree = int(idx.numel() - int(agree.sum()))
    s.nonfinite += disagree
    s.mismatches += disagree
    ca, cb = ca.index_fill(0, idx, 0), cb.index_fill(0, idx, 0)
    sq_a, sq_b, dot = float(torch.dot(ca, ca)), float(torch.dot(cb, cb)), float(torch.dot(ca, cb))
    if not (math.isfinite(sq_a) and math.isfinite(sq_b) and math.isfinite(dot)):
        # float32 overflow of huge-but-finite values: redo the sums in float64
        a64, b64 = ca.double(), cb.double()
        sq_a, sq_b, dot = float(a64 @ a64), float(b64 @ b64), float(a64 @ b64)
    return ca, cb, sq_a, sq_b, dot


def _as_tensor(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach()
        return t.cpu() if t.device.type != "cpu" else t
    import numpy as np

    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return torch.from_numpy(arr.astype(np.uint8)).bool()
    return torch.from_numpy(np.ascontiguousarray(arr))


def _real_pairs(t: Any) -> Any:
    """A complex tensor as (..., 2) real values (a real one as complex first)."""
    import torch

    return torch.view_as_real((t if t.is_complex() else t.to(torch.complex64)).resolve_conj())


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")
