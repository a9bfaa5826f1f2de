"""One sampled request, summarised per layer with the record's one-pass kernel.

Hooks are put on the model for the sampled call only and taken off right after it, so
the calls that are not sampled run the model exactly as without parity (no hook, torch's
fast path). Other requests running at the same time do pass through the hooks while they
are in place; the hooks ignore every thread but the sampled call's.
"""

from __future__ import annotations

import threading
import time
import weakref
from functools import partial
from typing import Any, Optional

from parity.records.flatten import flatten
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
        self._tensor = torch.Tensor
        self._counts: dict[str, int] = {}
        self._seen: dict[int, tuple[Any, int, dict[str, Any] | None]] = {}
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
        if seen is not None and seen[1] == version >= 0 and seen[0]() is t:
            stats = seen[2]
        elif t.is_sparse or t.is_quantized or t.numel() == 0:
            stats = None
        else:
            stats = read_summary(t, True, None).stats
            self._seen[id(t)] = (weakref.ref(t), version, stats)
        self.rows.append((key, tuple(t.shape), str(t.dtype).removeprefix("torch."), stats))
