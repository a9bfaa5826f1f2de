"""Every CUDA call the benchmark makes, in one place.

Kernel launches are asynchronous: without synchronisation a timer measures how fast
work is *queued*, not how long it takes. :class:`CudaTimer` brackets a stage with CUDA
events on the current stream and synchronises on the end event, so a stage's time is
the time the device really spent. Tests replace it with a subclass that overrides
these methods (no GPU needed).
"""

from __future__ import annotations

from typing import Any


class CudaTimer:
    """Synchronisation, event timing and peak memory for one CUDA device."""

    def __init__(self, device: Any = None) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())

    def device_name(self) -> str:
        return str(self._torch.cuda.get_device_name(self.device))

    def synchronize(self) -> None:
        """Wait until all queued work on the device has finished."""
        self._torch.cuda.synchronize(self.device)

    def start(self) -> Any:
        """Record a start event on the current stream; pass it to :meth:`elapsed_since`."""
        event = self._torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def elapsed_since(self, start: Any) -> float:
        """Seconds of device time since ``start``; blocks until the work has finished."""
        end = self._torch.cuda.Event(enable_timing=True)
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1000.0  # elapsed_time is in milliseconds

    def reset_peak_memory(self) -> None:
        self._torch.cuda.reset_peak_memory_stats(self.device)

    def peak_allocated_bytes(self) -> int:
        return int(self._torch.cuda.max_memory_allocated(self.device))


def cuda_timer_for(model: Any) -> CudaTimer | None:
    """A :class:`CudaTimer` for the device holding ``model``'s tensors, or None on CPU.

    A model with no parameters or buffers on a CUDA device (a CPU model, an ONNX
    session, a plain function) is timed on the CPU clock alone.
    """
    device = _cuda_device_of(model)
    return CudaTimer(device) if device is not None else None


def _cuda_device_of(model: Any) -> Any:
    tensors = []
    for attr in ("parameters", "buffers"):
        fn = getattr(model, attr, None)
        if callable(fn):
            try:
                tensors.extend(fn())
            except TypeError:  # not torch's parameters(): some other object's method
                continue
    for t in tensors:
        device = getattr(t, "device", None)
        if getattr(device, "type", None) == "cuda":
            return device
    return None
