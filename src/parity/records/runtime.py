"""The model's runtime state: what can make the same weights compute differently."""

from __future__ import annotations

from typing import Any


def model_runtime_state(model: Any, grad_enabled: bool) -> dict[str, Any]:
    """env["runtime"]["model"]: training-mode submodules, the caller's grad mode
    (``grad_enabled``, taken before parity switches grad off), autocast, default
    dtype, dtype/device per parameter and buffer, threads, determinism and TF32 flags."""
    import torch

    state: dict[str, Any] = {
        "grad_enabled": grad_enabled,
        "inference_mode": torch.is_inference_mode_enabled(),
        "autocast": _autocast(torch),
        "default_dtype": str(torch.get_default_dtype()).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn": {"allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                  "deterministic": bool(torch.backends.cudnn.deterministic),
                  "benchmark": bool(torch.backends.cudnn.benchmark)},
        "model_class": type(model).__name__,
        "training_modules": [],
        "parameters": {},
        "buffers": {},
    }
    if isinstance(model, torch.nn.Module):
        state["training_modules"] = [path for path, m in model.named_modules() if m.training]
        state["parameters"] = _placement(model.named_parameters(remove_duplicate=False))
        state["buffers"] = _placement(model.named_buffers(remove_duplicate=False))
    return state


def _placement(named: Any) -> dict[str, dict[str, str]]:
    return {name: {"dtype": str(t.dtype).removeprefix("torch."), "device": str(t.device)} for name, t in named}


def _autocast(torch: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for device in ("cpu", "cuda"):
        try:
            out[device] = {"enabled": bool(torch.is_autocast_enabled(device)),
                           "dtype": str(torch.get_autocast_dtype(device)).removeprefix("torch.")}
        except (AttributeError, RuntimeError, TypeError):  # older torch: per-device getters only
            out[device] = None
    return out
