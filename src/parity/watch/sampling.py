"""One sampled request, summarised per layer with the record's one-pass kernel.

Hooks are put on the model for the sampled call only and taken off right after it, so
the calls that are not sampled run the model exactly as without parity (no hook, torch's
fast path). Other requests running at the same time do pass through the hooks while they
are in place; the hooks ignore every thread but the sampled call's.

Inside a forward every Python-level operation runs with cold caches, so a hook does as
little as it can: a float32 CPU tensor goes straight to the compiled kernel by its data
pointer, which writes (min, max, sum, sum of squares) into a preallocated buffer; keys,
shapes, dtypes and the stats themselves are finished after the forward.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
import weakref
from functools import partial
from typing import Any, Optional

from parity.records import native
from parity.records.flatten import flatten
from parity.records.hashdef import BLOCK
from parity.records.stats import read_summary

#: (layer key, shape, dtype, stats) for each tensor a module returned
Row = tuple[str, tuple[int, ...], str, Optional[dict[str, Any]]]
#: (mean, std, min, max, NaN count, Inf count) of one output; None where not known
Figures = tuple[Optional[float], Optional[float], Optional[float], Optional[float], int, int]
#: (layer key, shape, dtype, figures or None): what the drift windows take
Sample = tuple[str, tuple[int, ...], str, Optional[Figures]]

_SLOTS = 64  # kernel results per buffer (5 doubles each)
_FIELDS = 5
_Buffer = ctypes.c_double * (_SLOTS * _FIELDS)
_ident, _clock, _isfinite = threading.get_ident, time.perf_counter, math.isfinite
_IDS = threading.Lock()


class LayerSampler:
    """Forward hooks on every submodule of ``model`` while used as a context manager.

    After the block, ``samples`` (and ``rows``, the same with stats as dicts) are keyed
    like a record's layers (``blocks.0.mlp#0/out``); ``seconds`` is the time spent in
    parity's code for this call (putting the hooks on and off, and the summaries): the
    sampled call's overhead.
    """

    def __init__(self, model: Any) -> None:
        import torch

        self.model = model
        self.samples: list[Sample] = []
        self.seconds = 0.0
        self._thread = threading.get_ident()
        self._tensor, self._f32, self._strided = torch.Tensor, torch.float32, torch.strided
        kernel = native.kernel()
        # the kernel's C entry point, called with raw pointers (no numpy view, no allocation)
        self._kernel = getattr(kernel, "_f32", None)
        self._keys = getattr(kernel, "_keys_ptr", None)
        self._buffers: list[Any] = []
        self._sizes: list[int] = []  # element count of each kernel slot
        self._hashes: Any = None  # scratch for the block hashes the kernel also writes
        self._hashes_ptr = 0
        # path, call, output suffix, torch.Size, dtype, and a kernel slot | stats | None
        self._raw: list[tuple[str, int, str, Any, Any, Any]] = []
        self._counts: dict[str, int] = {}
        self._seen: dict[int, tuple[Any, int, Any]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> LayerSampler:
        start = time.perf_counter()
        try:
            self._attach()
        except BaseException:
            self.remove()
            raise
        self.seconds += time.perf_counter() - start
        return self

    def _attach(self) -> None:
        """A forward hook on every submodule, as ``register_forward_hook`` puts it (the
        same dict entry, under one handle id from torch's counter), without building a
        ``RemovableHandle`` (three weak references) per module: half this class's cost
        on a small model."""
        from torch.utils.hooks import RemovableHandle

        with _IDS:  # two sampled calls at once (threads) must not share an id
            hid = RemovableHandle.next_id
            RemovableHandle.next_id = hid + 1
        hook, handles = self._on_output, self._handles
        for path, module in self.model.named_modules():
            hooks = module._forward_hooks
            hooks[hid] = partial(hook, path)
            handles.append((hooks, hid))

    def __exit__(self, *exc: object) -> None:
        start = time.perf_counter()
        self.remove()
        self._seen.clear()
        self.samples = self._finish()
        self._raw.clear()
        self.seconds += time.perf_counter() - start

    @property
    def rows(self) -> list[Row]:
        """The samples with their stats as dicts, as a record's layer entries hold them."""
        return [(key, shape, dtype, _as_stats(f)) for key, shape, dtype, f in self.samples]

    def remove(self) -> None:
        for hooks, hid in self._handles:
            hooks.pop(hid, None)
        self._handles.clear()

    def _on_output(self, path: str, module: Any, args: Any, output: Any) -> None:
        if _ident() != self._thread:  # another request, served meanwhile
            return
        start = _clock()
        call = self._counts.get(path, 0)
        self._counts[path] = call + 1
        if type(output) is self._tensor:
            self._read(path, call, "/out", output)
        else:
            for out, value in flatten(output, "/out"):
                if isinstance(value, self._tensor):
                    self._read(path, call, out, value)
        self.seconds += _clock() - start

    def _read(self, path: str, call: int, out: str, t: Any) -> None:
        """Summarise ``t`` (once: modules that return their input, or a child's output,
        share the summary while the tensor is unchanged); the key is built after."""
        try:
            version = t._version
        except RuntimeError:  # inference tensors keep no version counter
            version = -1
        seen = self._seen.get(id(t))
        if seen is not None and seen[1] == version >= 0 and seen[0]() is t:
            value = seen[2]
        else:
            value = self._summary(t)
            self._seen[id(t)] = (weakref.ref(t), version, value)
        self._raw.append((path, call, out, t.shape, t.dtype, value))

    def _summary(self, t: Any) -> Any:
        """A float32 CPU tensor: the slot where the kernel's one pass left its moments
        (finished into stats after the forward). Else (other dtypes, devices, NaN/Inf
        present, no kernel) the stats from the record's summary; None for no values."""
        if t.dtype is self._f32 and self._kernel is not None and t.layout is self._strided and t.is_cpu:
            n = t.numel()
            if not n:
                return None
            try:
                data = t if t.is_contiguous() else t.contiguous()
                pointer = data.data_ptr()
            except RuntimeError:  # a tensor without storage (a functorch or fake tensor)
                pointer = 0
            if pointer:
                slot = len(self._sizes)
                if slot % _SLOTS == 0:
                    self._buffers.append(_Buffer())
                buf = self._buffers[-1]
                at = (slot % _SLOTS) * _FIELDS
                self._kernel(pointer, n, self._keys, self._scratch(n), ctypes.addressof(buf) + 8 * at, 0, None)
                if _isfinite(buf[at + 3]):
                    self._sizes.append(n)
                    return slot
                if slot % _SLOTS == 0:
                    self._buffers.pop()
        if t.is_sparse or t.is_quantized or not t.numel():
            return None
        return read_summary(t, True, None).stats  # NaN/Inf counted, other dtypes and devices

    def _scratch(self, n: int) -> int:
        blocks = n // BLOCK
        if blocks and (self._hashes is None or len(self._hashes) < blocks):
            self._hashes = (ctypes.c_uint32 * max(blocks, 64))()
            self._hashes_ptr = ctypes.addressof(self._hashes)
        return self._hashes_ptr

    def _finish(self) -> list[Sample]:
        """Keys, shapes and stats of the forward's outputs, from the kernel's moments."""
        sizes = self._sizes
        moments: list[float] = []
        for i, buf in enumerate(self._buffers):
            moments += buf[:min(len(sizes) - i * _SLOTS, _SLOTS) * _FIELDS]
        out: list[Sample] = []
        for path, call, suffix, shape, dtype, value in self._raw:
            if type(value) is int:
                at = value * _FIELDS
                n = sizes[value]
                mean = moments[at + 2] / n
                var = moments[at + 3] / n - mean * mean
                figures: Figures | None = (mean, math.sqrt(var) if var > 0 else 0.0, moments[at], moments[at + 1],
                                           0, 0)
            else:
                figures = stats_figures(value)
            out.append((f"{path}#{call}{suffix}", tuple(shape), str(dtype), figures))
        return out


def stats_figures(stats: Any) -> Figures | None:
    """Figures of a stats dict (None where a figure is missing; None for no stats)."""
    if not stats:
        return None

    def num(name: str) -> float | None:
        v = stats.get(name)
        return float(v) if v is not None else None

    return (num("mean"), num("std"), num("min"), num("max"), int(stats.get("nan") or 0),
            int(stats.get("inf") or 0))


def _as_stats(f: Figures | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"mean": f[0], "std": f[1], "min": f[2], "max": f[3], "nan": f[4], "inf": f[5]}
