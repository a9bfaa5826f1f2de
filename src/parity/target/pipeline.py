"""The Pipeline a TARGET resolves to: raw inputs -> preprocess -> model -> postprocess."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Pipeline:
    """What parity records, verifies and benchmarks.

    ``preprocess`` turns a *list* of raw inputs (one batch) into the model's input;
    ``None`` means the raw items are collated (tensors stacked) and fed to the model.
    ``postprocess`` turns the model's output into the prediction; ``None`` means the
    model output is the prediction. ``assets`` are files or directories hashed into
    records (tokenizer files, configs...). ``example_inputs`` are used when no
    ``--inputs`` file is given.
    """

    model: Any  # torch.nn.Module or any callable (TorchScript, exported program, ONNX session)
    preprocess: Callable[[list[Any]], Any] | None = None
    postprocess: Callable[[Any], Any] | None = None
    assets: Sequence[str | Path] = ()
    example_inputs: Sequence[Any] | None = None
    batch_size: int = 8
    name: str | None = None

    def call_model(self, x: Any) -> Any:
        """Call the model the way its input is shaped (see :func:`call_model`)."""
        return call_model(self.model, x)


def call_model(model: Any, x: Any) -> Any:
    """Call ``model`` the way its input is shaped: dict -> ``model(**x)``,
    tuple/list -> ``model(*x)``, anything else -> ``model(x)``."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)
