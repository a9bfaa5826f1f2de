"""The parity check: eager (reference) vs the exported artifact, output by output.

Each case is one set of model inputs: the example, the other batches of the inputs, and
variants of another batch size and sequence length. For TorchScript, submodules whose
names survive in the artifact are also called alone on the inputs eager gave them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parity.exporters._inputs import shapes_of
from parity.exporters.result import CaseResult, OutputCheck, SubmoduleCheck
from parity.target.formats import get as get_format
from parity.target.formats.job import first_line
from parity.target.formats.model_io import flatten_outputs, join_inputs
from parity.target.pipeline import call_model

#: submodules compared at most (the first ones in execution order)
MAX_SUBMODULES = 400


@dataclass(frozen=True)
class CheckTolerance:
    """Tolerances of the check: explicit ``atol``/``rtol``, or the compare engine's
    per-dtype defaults times ``scale`` (exact dtypes stay exact)."""

    atol: float | None = None
    rtol: float | None = None
    scale: float = 1.0

    @classmethod
    def for_format(cls, format: str, atol: float | None, rtol: float | None) -> CheckTolerance:
        """The format's ``tolerance_scale`` applies: formats that run their own kernels
        (ONNX Runtime, AOTInductor's generated C++) reorder and fuse float reductions."""
        return cls(atol, rtol, get_format(format).tolerance_scale)

    def for_dtype(self, dtype: str) -> tuple[float, float]:
        from parity.comparison.tolerances import default_tolerance

        d_atol, d_rtol = default_tolerance(dtype)
        return (d_atol * self.scale if self.atol is None else self.atol,
                d_rtol * self.scale if self.rtol is None else self.rtol)

    def to_json(self) -> dict[str, Any]:
        basis = "given" if self.atol is not None and self.rtol is not None else (
            "compare engine per-dtype defaults" + (f" x{self.scale:g} (the artifact runs its own kernels)"
                                                   if self.scale != 1.0 else ""))
        return {"atol": self.atol, "rtol": self.rtol, "scale": self.scale, "basis": basis}


def check_case(label: str, eager: Any, artifact: Any, names: Sequence[str], tensors: Sequence[Any],
               call: str, tol: CheckTolerance) -> CaseResult:
    """Run one case through both models and compare every output under ``tol``."""
    import torch

    result = CaseResult(label, shapes_of(names, tensors))
    with torch.no_grad():
        try:
            reference = flatten_outputs(call_model(eager, join_inputs(names, tensors, call)))
        except Exception as exc:  # a generated shape the model itself does not accept
            result.skipped = f"eager refused these inputs: {type(exc).__name__}: {first_line(exc, 200)}"
            return result
        try:
            got = dict(flatten_outputs(artifact(*tensors)))
        except Exception as exc:  # the artifact refused these inputs: that is the finding
            result.error = f"the artifact failed on these inputs: {type(exc).__name__}: {first_line(exc, 240)}"
            return result
    for name, ref in reference:
        if name not in got:
            result.missing.append(name)
            continue
        result.outputs.append(OutputCheck(name, compare(ref, got.pop(name), tol)))
    result.missing.extend(sorted(got))
    return result


def compare(reference: Any, other: Any, tol: CheckTolerance) -> Any:
    """The compare engine's metrics of ``other`` against ``reference`` under ``tol``."""
    from parity.comparison.metrics import compare_tensors

    return compare_tensors(reference, other, *tol.for_dtype(str(reference.dtype)))



def submodule_checks(eager: Any, scripted: Any, prefix: str, example: Any,
                     tol: CheckTolerance) -> list[SubmoduleCheck]:
    """Each eager submodule's first call replayed on the same-named TorchScript submodule.

    ``prefix`` is where the eager model sits inside the artifact ("model." for a trace of
    parity's positional wrapper). Submodules that are gone (inlined) or cannot be called
    alone with those inputs are reported as skipped with the reason.
    """
    import torch

    calls = _capture_calls(eager, example)
    scripted_modules = dict(scripted.named_modules())
    out: list[SubmoduleCheck] = []
    with torch.no_grad():
        for name, (args, kwargs, ref) in list(calls.items())[:MAX_SUBMODULES]:
            sub = scripted_modules.get(prefix + name)
            if sub is None:
                out.append(SubmoduleCheck(name, "skipped", reason="not kept in the artifact"))
                continue
            out.append(_replay(name, sub, args, kwargs, ref, tol))
    return out


def _capture_calls(eager: Any, example: Any) -> dict[str, tuple[Any, Any, Any]]:
    """{submodule name: (args, kwargs, output)} of each submodule's first call, in call order."""
    import torch

    calls: dict[str, tuple[Any, Any, Any]] = {}
    handles = []

    def hook_for(name: str) -> Any:
        def hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            # Copies, not references: an in-place op later in the forward (ReLU(inplace=True)
            # after a BatchNorm) would otherwise rewrite this module's recorded output.
            if name not in calls:
                calls[name] = _snapshot((args, dict(kwargs), output))
        return hook

    for name, module in eager.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook_for(name), with_kwargs=True))
    try:
        with torch.no_grad():
            call_model(eager, example)
    finally:
        for h in handles:
            h.remove()
    return calls


def _snapshot(value: Any) -> Any:
    """``value`` with every tensor in it detached and cloned (containers rebuilt)."""
    import torch
    from torch.utils._pytree import tree_map

    return tree_map(lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else x, value)


def _replay(name: str, sub: Any, args: Any, kwargs: Any, ref: Any,
            tol: CheckTolerance) -> SubmoduleCheck:
    try:
        got = sub(*args, **kwargs)
        ref_flat, got_flat = flatten_outputs(ref), flatten_outputs(got)
    except Exception as exc:  # TorchScript refuses these inputs (types, arity): cannot compare
        return SubmoduleCheck(name, "skipped", reason=f"cannot be called alone: {first_line(exc, 160)}")
    if len(ref_flat) != len(got_flat) or not ref_flat:
        return SubmoduleCheck(name, "skipped", reason="outputs differ in structure")
    metrics: Any = None
    for (_, a), (_, b) in zip(ref_flat, got_flat):
        m = compare(a, b, tol)
        metrics = m if metrics is None else metrics.merge(m)
    return SubmoduleCheck(name, "match" if metrics.ok else "diverged", metrics=metrics)
