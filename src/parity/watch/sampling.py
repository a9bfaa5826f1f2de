"""One sampled request, summarised per layer with the record's one-pass kernel.

Hooks are put on the model for the sampled call only and taken off right after it, so
the calls that are not sampled run the model exactly as without parity (no hook, torch's
fast path). Other requests running at the same time do pass through the hooks while they
are in place; the hooks ignore every thread but the sampled call's.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from functools import partial
from typing import Any, Optional

import numpy as np

from parity.records import native
from parity.records.flatten import flatten
from parity.records.hashdef import BLOCK
from parity.records.stats import read_summary

#: (layer key, shape, dtype, stats) for each tensor a module returned
Row = tuple[str, tuple[int, ...], str, Optional[dict[str, Any]]]


class LayerSampler:
    """Forward hooks on every submodule of ``model`` while used as a context manager.

    ``rows`` are keyed like a record's layers (``blocks.0.mlp#0/out``); ``seconds`` is the
    time spent in parity's code for this call (putting the hooks on and off, and the
    summaries): the sampled call's overhead.
    """

    def __init__(self, model: Any) -> None:
        import torch

        self.model = model
        self.rows: list[Row] = []
        self.seconds = 0.0
        self._thread = threading.get_ident()
        self._tensor, self._f32 = torch.Tensor, torch.float32
        self._fast = native.kernel()
        self._raw: list[tuple[str, tuple[int, ...], str, Any, int]] = []  # moments finished after the forward
        self._counts: dict[str, int] = {}
        self._seen: dict[int, tuple[Any, int, tuple[Any, int]]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> LayerSampler:
        start = time.perf_counter()
        try:
            for path, module in self.model.named_modules():
                self._handles.append(module.register_forward_hook(partial(self._on_output, path)))
        except BaseException:
            self.remove()
            raise
        self.seconds += time.perf_counter() - start
        return self

    def __exit__(self, *exc: object) -> None:
        start = time.perf_counter()
        self.remove()
        self._seen.clear()
        self.rows = [(key, shape, dtype, _finish(value, n) if n else value) for key, shape, dtype, value, n in self._raw]
        self._raw.clear()
        self.seconds += time.perf_counter() - start

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _on_output(self, path: str, module: Any, args: Any, output: Any) -> None:
        if threading.get_ident() != self._thread:  # another request, served meanwhile
            return
        start = time.perf_counter()
        call = self._counts.get(path, 0)
        self._counts[path] = call + 1
        if type(output) is self._tensor:
            self._read(f"{path}#{call}/out", output)
        else:
            for out, value in flatten(output, "/out"):
                if isinstance(value, self._tensor):
                    self._read(f"{path}#{call}{out}", value)
        self.seconds += time.perf_counter() - start

    def _read(self, key: str, t: Any) -> None:
        try:
            version = t._version
        except RuntimeError:  # inference tensors keep no version counter
            version = -1
        seen = self._seen.get(id(t))
        value: Any = None
        n = 0
        if seen is not None and seen[1] == version >= 0 and seen[0]() is t:
            value, n = seen[2]
        elif not (t.is_sparse or t.is_quantized or t.numel() == 0):
            value, n = self._summary(t)
            self._seen[id(t)] = (weakref.ref(t), version, (value, n))
        self._raw.append((key, tuple(t.shape), str(t.dtype), value, n))

    def _summary(self, t: Any) -> tuple[Any, int]:
        """(min, max, sum, sum of squares) and the count of a float32 CPU tensor from the
        kernel's one pass, finished into stats after the forward; else the stats."""
        if self._fast is not None and t.dtype is self._f32:
            try:
                flat = t.numpy().reshape(-1)  # raises for accelerators and tensors that require grad
            except (TypeError, RuntimeError):
                flat = None
            if flat is not None:
                if not flat.flags.c_contiguous:
                    flat = np.ascontiguousarray(flat)
                moments = self._fast.f32_summary(flat, BLOCK)[1]
                if math.isfinite(moments[3]):
                    return moments, int(flat.size)
        return read_summary(t, True, None).stats, 0  # NaN/Inf counted, other dtypes and devices


def _finish(moments: Any, n: int) -> dict[str, Any]:
    """Stats from one-pass moments (the std is exact enough for a drift score: the record's
    cancellation-safe recomputation needs the tensor, gone after the forward)."""
    mn, mx, total, squares = moments
    mean = total / n
    return {"min": mn, "max": mx, "mean": mean, "std": math.sqrt(max(squares / n - mean * mean, 0.0)),
            "l2": math.sqrt(squares), "nan": 0, "inf": 0}
