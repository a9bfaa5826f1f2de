"""ONNX export (torch's dynamo-based exporter) with parity metadata in ``metadata_props``.

Needs the ``parity[onnx]`` extra (onnx, onnxscript; onnxruntime to load and check).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from parity.errors import ExportError, TargetError
from parity.target.formats.base import ArtifactFormat
from parity.target.formats.job import ExportJob, Finding, first_line, quiet_exporter, user_frame
from parity.target.formats.model_io import META_KEY
from parity.target.formats.torch_export import (
    ALTERNATIVES,
    dynamic_shapes,
    guard_locations,
    specialisation_findings,
)

_MISSING_FIX = "pip install 'parity[onnx]' (onnx, onnxscript, onnxruntime), or choose another --format"


def require_onnx() -> None:
    """Raise :class:`ExportError` naming what is missing for ``--format onnx``."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"--format onnx needs {' and '.join(missing)}, not installed here", fix=_MISSING_FIX)


def onnx_bytes(job: ExportJob, output_names: list[str]) -> tuple[bytes, list[Finding]]:
    """Serialized ONNX model bytes and the exporter's specialisation findings."""
    import torch

    require_onnx()
    try:
        with torch.no_grad(), quiet_exporter(), guard_locations() as guards:
            program = torch.onnx.export(job.wrapper, tuple(job.tensors), input_names=list(job.names),
                                        output_names=output_names, dynamic_shapes=dynamic_shapes(job),
                                        dynamo=True, verbose=False, optimize=True)
    except Exception as exc:
        where = user_frame(exc)
        raise ExportError(f"the ONNX exporter could not capture the model: {first_line(exc)}"
                          + (f" (at {where})" if where else ""), fix=ALTERNATIVES) from exc
    if program is None:  # only with f= given, which we never pass
        raise ExportError("the ONNX exporter returned no program", fix="report this to parity")
    findings = specialisation_findings(program.exported_program, job, guards) if program.exported_program else []
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, job.meta.to_text()
    return proto.SerializeToString(), findings


def load_onnx(path: str) -> tuple[Any, str]:
    """(onnxruntime InferenceSession, stored metadata text) of an ONNX file."""
    try:
        import onnxruntime
    except ImportError:
        raise TargetError(f"{path}: loading an ONNX artifact needs onnxruntime, not installed here",
                          fix="pip install 'parity[onnx]'") from None
    import torch

    options = onnxruntime.SessionOptions()
    # Same intra-op thread count as torch, so eager and ONNX are compared like for like
    # (onnxruntime fixes its pool when the session is created).
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY, "")
    return session, meta


def onnx_runner(session: Any) -> Any:
    """A function: positional torch tensors in, list of torch tensors out."""
    import torch

    names = [i.name for i in session.get_inputs()]

    def run(*tensors: Any) -> list[Any]:
        feed = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}
        return [torch.from_numpy(o) for o in session.run(None, feed)]

    return run


def load(path: str) -> tuple[Any, str]:
    """(function of positional tensors, stored metadata text) of an ONNX file."""
    session, meta = load_onnx(path)
    return onnx_runner(session), meta


def export(job: ExportJob) -> tuple[bytes, list[Finding]]:
    """:func:`onnx_bytes` with the outputs named as the job's metadata names them."""
    return onnx_bytes(job, list(job.meta.output_names))


FORMAT = ArtifactFormat(name="onnx", suffixes=(".onnx",), title="ONNX", load=load, export=export,
                        require=require_onnx, tolerance_scale=10.0)
