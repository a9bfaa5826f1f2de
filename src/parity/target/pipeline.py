"""The Pipeline a TARGET resolves to: raw inputs -> preprocess -> model -> postprocess."""

from __future__ import annotations

import inspect
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
    model output is the prediction. ``postprocess(output, inputs)`` (a second required
    positional parameter, or one named ``inputs``) also receives what the model was fed,
    e.g. the tokenizer's ``attention_mask`` for masked mean pooling. ``assets`` are files or directories hashed into
    records (tokenizer files, configs...). ``example_inputs`` are used when no
    ``--inputs`` file is given.
    """

    model: Any  # torch.nn.Module or any callable (TorchScript, exported program, ONNX session)
    preprocess: Callable[[list[Any]], Any] | None = None
    postprocess: Callable[..., Any] | None = None
    assets: Sequence[str | Path] = ()
    example_inputs: Sequence[Any] | None = None
    batch_size: int = 8
    name: str | None = None

    def call_model(self, x: Any) -> Any:
        """Call the model the way its input is shaped (see :func:`call_model`)."""
        return call_model(self.model, x)

    def run_postprocess(self, output: Any, inputs: Any) -> Any:
        """``postprocess`` applied to the model's ``output`` (``inputs``: what the model was
        fed), in whichever form it takes; the output itself when there is none."""
        if self.postprocess is None:
            return output
        return postprocess_caller(self.postprocess)(output, inputs)


def call_model(model: Any, x: Any) -> Any:
    """Call ``model`` the way its input is shaped: dict -> ``model(**x)``,
    tuple/list -> ``model(*x)``, anything else -> ``model(x)``."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def postprocess_caller(fn: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    """``fn`` as a function of (model output, model inputs), whichever form it has.

    The two-argument form is chosen when ``fn``'s second positional parameter has no
    default or is named ``inputs``, or when it takes ``*args``; otherwise ``fn`` gets the
    output alone (``postprocess(output)``, the original form, and functions with options
    such as ``def post(out, dim=1)``). Callables without a signature get the output alone.
    Record, verify and bench all call postprocess through this function.
    """
    if _takes_inputs(fn):
        return fn
    return lambda output, inputs: fn(output)


def _takes_inputs(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2:
        second = positional[1]
        return second.default is inspect.Parameter.empty or second.name in ("inputs", "model_inputs")
    return any(p.kind is p.VAR_POSITIONAL for p in params)
