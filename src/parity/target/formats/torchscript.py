"""TorchScript export (``torch.jit.trace`` / ``torch.jit.script``) and its trace findings.

Tracing records one execution: Python control flow that depended on tensor values is
frozen into the graph and only a ``TracerWarning`` says so. Each such warning becomes a
finding carrying the model code's ``file:line``.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from parity.errors import ExportError
from parity.target.formats.base import ArtifactFormat
from parity.target.formats.job import ExportJob, Finding, first_line, short_path, user_frame
from parity.target.formats.model_io import META_KEY

#: TracerWarning text -> (finding code, what was frozen)
_TRACER_KINDS = (
    ("python boolean", "frozen-branch", "data-dependent branch frozen by trace"),
    ("python index", "frozen-value", "tensor value used as an index frozen into a constant by trace"),
    ("python number", "frozen-value", "tensor value frozen into a constant by trace"),
    ("python integer", "frozen-value", "tensor value frozen into a constant by trace"),
    ("iterating over a tensor", "frozen-loop", "loop over a tensor unrolled by trace"),
    ("registered as constants", "frozen-constant", "tensor created during the trace frozen into a constant"),
)


def export_torchscript(job: ExportJob) -> tuple[bytes, list[Finding]]:
    """Serialized TorchScript bytes (with parity metadata in ``_extra_files``) and findings."""
    if job.method == "script":
        module, findings = _script(job), list[Finding]()
    else:
        module, findings = _trace(job)
    buf = io.BytesIO()
    torch_jit_save(module, buf, job.meta.to_text())
    return buf.getvalue(), findings


def torch_jit_save(module: Any, buf: io.BytesIO, meta_text: str) -> None:
    import torch

    torch.jit.save(module, buf, _extra_files={META_KEY: meta_text})


def _trace(job: ExportJob) -> tuple[Any, list[Finding]]:
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        try:
            with torch.no_grad():
                traced = torch.jit.trace(job.wrapper, tuple(job.tensors), check_trace=False)
        except Exception as exc:
            raise ExportError(_failure("torch.jit.trace", exc),
                              fix="try --method script, or --format export / --format onnx") from exc
    return traced, tracer_findings(caught)


def _script(job: ExportJob) -> Any:
    import torch

    try:
        return torch.jit.script(job.model)
    except Exception as exc:
        raise ExportError(_failure("torch.jit.script", exc),
                          fix="try --method trace (and read its findings), or --format export") from exc


def _failure(tool: str, exc: BaseException) -> str:
    where = user_frame(exc) or _compiler_location(str(exc))
    return f"{tool} could not convert the model: {first_line(exc)}" + (f" (at {where})" if where else "")


def _compiler_location(message: str) -> str | None:
    """``file:line`` from a TorchScript compiler error (it quotes the source it rejected)."""
    import re

    hits = re.findall(r'File "([^"]+)", line (\d+)', message)
    return f"{short_path(hits[-1][0])}:{hits[-1][1]}" if hits else None


def tracer_findings(caught: list[warnings.WarningMessage]) -> list[Finding]:
    """One finding per distinct TracerWarning location, in the order they were raised."""
    import torch

    out: list[Finding] = []
    seen: set[str] = set()
    for w in caught:
        if not issubclass(w.category, torch.jit.TracerWarning):
            continue
        where = f"{short_path(w.filename)}:{w.lineno}"
        if where in seen:
            continue
        seen.add(where)
        code, what = _classify(str(w.message))
        out.append(Finding("warning", code, f"{what} at {where}: inputs that take another path "
                           "get this path's result", where))
    return out


def _classify(message: str) -> tuple[str, str]:
    low = message.lower()
    for needle, code, what in _TRACER_KINDS:
        if needle in low:
            return code, what
    return "trace-warning", f"trace warning ({first_line(Exception(message), 120)})"


def load_torchscript(path: str) -> tuple[Any, str]:
    """(ScriptModule, stored metadata text) of a TorchScript file."""
    import torch

    extra = {META_KEY: ""}
    # Keep the devices it was saved on where CUDA exists; a CPU-only box gets it on CPU.
    where = None if torch.cuda.is_available() else "cpu"
    module = torch.jit.load(path, map_location=where, _extra_files=extra)
    return module.eval(), extra[META_KEY]


FORMAT = ArtifactFormat(
    name="torchscript", suffixes=(".pt", ".ts"), title="TorchScript", load=load_torchscript,
    export=export_torchscript, named_weights=True, named_submodules=True, methods=("trace", "script"))
