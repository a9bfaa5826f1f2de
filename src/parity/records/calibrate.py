"""Noise floor: each layer's own run-to-run error under another thread count."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from parity.progress import ProgressEvent, ProgressFn, report
from parity.records.flatten import flatten


def other_thread_count(threads: int) -> int:
    """The harmless perturbation: 1 thread when running on several, else 2."""
    return 1 if threads > 1 else 2


def noise_floors(model: Any, run_batch: Callable[[int], None], batches: int,
                 progress: ProgressFn | None = None) -> dict[tuple[int, str], float]:
    """{(batch, key): max abs difference} between a run at the current thread count and
    one at :func:`other_thread_count`, for every floating-point layer output.

    ``run_batch(i)`` runs batch ``i`` through the model (same RNG seed each time).
    Only one batch's outputs are held in memory at a time. ``progress`` hears of each batch.
    """
    import torch

    threads = torch.get_num_threads()
    floors: dict[tuple[int, str], float] = {}
    for batch in range(batches):
        reference: dict[str, Any] = {}
        with _hooks(model, partial(_keep, reference)):
            run_batch(batch)
        torch.set_num_threads(other_thread_count(threads))
        try:
            with _hooks(model, partial(_diff, reference, floors, batch)):
                run_batch(batch)
        finally:
            torch.set_num_threads(threads)
        report(progress, ProgressEvent("calibrate", batch + 1, batches, "batches"))
    return floors


def _keep(reference: dict[str, Any], key: str, t: Any) -> None:
    reference[key] = t.detach().to("cpu", copy=True)


def _diff(reference: dict[str, Any], floors: dict[tuple[int, str], float], batch: int, key: str, t: Any) -> None:
    ref = reference.get(key)
    if ref is None or ref.shape != t.shape:
        return
    diff = (t.detach().cpu().double() - ref.double()).abs()
    diff = diff[torch_isfinite(diff)]
    floors[(batch, key)] = float(diff.max()) if diff.numel() else 0.0


def torch_isfinite(t: Any) -> Any:
    import torch

    return torch.isfinite(t)


class _hooks:
    """Forward hooks calling ``sink(key, tensor)`` for every floating-point output."""

    def __init__(self, model: Any, sink: Callable[[str, Any], None]) -> None:
        self.model, self.sink = model, sink
        self.handles: list[Any] = []
        self.counts: dict[str, int] = {}

    def __enter__(self) -> _hooks:
        for path, module in self.model.named_modules():
            self.handles.append(module.register_forward_hook(partial(self._on_output, path)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def _on_output(self, path: str, module: Any, args: Any, output: Any) -> None:
        import torch

        call = self.counts.get(path, 0)
        self.counts[path] = call + 1
        for out, value in flatten(output, "/out"):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                self.sink(f"{path}#{call}{out}", value)
