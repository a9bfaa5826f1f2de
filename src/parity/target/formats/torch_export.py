"""``torch.export`` (the ``export`` format, and the program AOTInductor and ONNX compile).

Dynamic dimensions are requested with ``Dim.AUTO``: the exporter keeps a dimension
dynamic when the model allows it and specialises it otherwise. Every dimension that was
asked to be dynamic but came out fixed becomes a finding, as does the range torch
assumed (a dynamic batch starts at 2: torch's 0/1 specialisation).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

from parity.errors import ExportError, TargetError
from parity.target.formats.base import ArtifactFormat
from parity.target.formats.job import (
    ExportJob,
    Finding,
    first_line,
    quiet_exporter,
    user_frame,
    user_frame_of_stack,
)
from parity.target.formats.model_io import META_KEY

ALTERNATIVES = ("try --format torchscript --method trace (its findings and parity check show "
                "what the trace froze), or rewrite the branch with torch.cond")


def dynamic_shapes(job: ExportJob) -> Any:
    """The ``dynamic_shapes`` argument for the positional wrapper (None when static)."""
    if not job.dims:
        return None
    from torch.export import Dim

    specs = tuple({int(d): Dim.AUTO for d in job.dims.get(n, {})} or None for n in job.names)
    return (specs,)


def export_program(job: ExportJob, tool: str = "torch.export") -> tuple[Any, list[Finding]]:
    """The ExportedProgram of the wrapper and the specialisation findings.

    A model torch.export cannot capture raises :class:`ExportError` with the reason, the
    model code's ``file:line`` when known, and an alternative to try.
    """
    import torch

    try:
        with torch.no_grad(), quiet_exporter(), guard_locations() as guards:
            program = torch.export.export(job.wrapper, tuple(job.tensors),
                                          dynamic_shapes=dynamic_shapes(job), strict=False)
    except Exception as exc:
        where = user_frame(exc)
        raise ExportError(f"{tool} could not capture the model: {first_line(exc)}"
                          + (f" (at {where})" if where else ""), fix=ALTERNATIVES) from exc
    return program, specialisation_findings(program, job, guards)


class GuardLog(logging.Handler):
    """Listens to torch's shape-guard log: which input dim each symbol is, and the model
    line (``file:line``, from the live stack) that first pinned a symbol to a constant."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.symbols: dict[tuple[int, int], str] = {}
        self.where: dict[str, str | None] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if (m := _CREATE_SYMBOL.match(message)) is not None:
            self.symbols[(int(m.group(2)), int(m.group(3)))] = m.group(1)
        elif (m := _GUARD_CONSTANT.match(message)) is not None and m.group(1) not in self.where:
            # non-strict export runs the model's Python: its frame is on the stack now
            self.where[m.group(1)] = user_frame_of_stack()

    def location(self, index: int, dim: int) -> str | None:
        symbol = self.symbols.get((index, dim))
        return self.where.get(symbol) if symbol else None


_CREATE_SYMBOL = re.compile(r"create_symbol (s\d+) = \d+ for L\['args'\]\[(\d+)\]\.size\(\)\[(\d+)\]")
_GUARD_CONSTANT = re.compile(r"eval Eq\((s\d+), -?\d+\) \[guard added\]")
_SHAPES_LOGGER = "torch.fx.experimental.symbolic_shapes"


@contextlib.contextmanager
def guard_locations() -> Iterator[GuardLog]:
    """Attach a :class:`GuardLog` to torch's symbolic-shapes logger for the block."""
    logger = logging.getLogger(_SHAPES_LOGGER)
    handler, level = GuardLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def specialisation_findings(program: Any, job: ExportJob, guards: GuardLog | None = None) -> list[Finding]:
    """Findings for requested-dynamic dimensions that are fixed or bounded in ``program``.

    A fixed dimension names the model line whose shape guard fixed it, when known.
    """
    import torch

    findings: list[Finding] = []
    shapes = _user_input_shapes(program)
    for index, (name, shape) in enumerate(zip(job.names, shapes)):
        for dim, label in job.dims.get(name, {}).items():
            size = _constant(shape[int(dim)])
            if isinstance(size, int):
                where = guards.location(index, int(dim)) if guards is not None else None
                findings.append(Finding("warning", "specialised-dim",
                                        f"the {label} dimension (dim {dim}) of input {name!r} was specialised "
                                        f"to {size}" + (f" by the shape guard at {where}" if where else "")
                                        + ": the artifact accepts only that size", where))
            elif isinstance(size, torch.SymInt):
                findings.extend(_range_finding(program, name, dim, label, size))
    return _merge_same(findings)


def _constant(size: Any) -> Any:
    """``size`` as an int when it is a number or a SymInt pinned to one, else unchanged."""
    expr = getattr(getattr(size, "node", None), "expr", None)
    if expr is not None and getattr(expr, "is_number", False):
        return int(expr)
    return size


def _merge_same(findings: list[Finding]) -> list[Finding]:
    """One finding per message once input names are removed (token inputs share a range)."""
    import re

    merged: dict[str, list[str]] = {}
    first: dict[str, Finding] = {}
    for f in findings:
        key = re.sub(r"of input '[^']*'", "of input {}", f.message)
        merged.setdefault(key, []).append(re.search(r"of input '([^']*)'", f.message).group(1))  # type: ignore[union-attr]
        first.setdefault(key, f)
    out = []
    for key, names in merged.items():
        label = "input " + repr(names[0]) if len(names) == 1 else "inputs " + ", ".join(map(repr, names))
        out.append(Finding(first[key].severity, first[key].code, key.replace("input {}", label), first[key].where))
    return out


def _user_input_shapes(program: Any) -> list[Any]:
    user_inputs = set(program.graph_signature.user_inputs)
    return [node.meta["val"].shape for node in program.graph.nodes
            if node.op == "placeholder" and node.name in user_inputs]


def _range_finding(program: Any, name: str, dim: str, label: str, size: Any) -> list[Finding]:
    """An info finding when torch bounded a dynamic dimension (e.g. seq <= max positions).

    A lower bound of 2 is torch's 0/1 rule and not reported: size 1 still runs.
    """
    bounds = program.range_constraints.get(size.node.expr)
    if bounds is None:
        return []
    lower, upper = _as_int(bounds.lower), _as_int(bounds.upper)
    if (lower is None or lower <= 2) and upper is None:
        return []
    span = f"{lower} to {upper}" if upper is not None else f"{lower} up"
    return [Finding("info", "dim-range", f"the {label} dimension (dim {dim}) of input {name!r} is dynamic "
                    f"for sizes {span}; the model's code bounds it there")]


def _as_int(bound: Any) -> int | None:
    """A sympy range bound as an int; None for infinity (torch's int_oo or sympy's oo)."""
    try:
        value = int(bound)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return None
    return value if abs(value) < 2**62 else None


def export_bytes(job: ExportJob) -> tuple[bytes, list[Finding]]:
    """A ``.pt2`` torch.export archive with parity metadata as an extra file."""
    import torch

    program, findings = export_program(job)
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={META_KEY: job.meta.to_text()})
    return buf.getvalue(), findings


def load_exported(path: str) -> tuple[Any, str]:
    """(callable module, stored metadata text) of a torch.export ``.pt2`` archive."""
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        raise TargetError(f"{path}: not a .pt2 archive (not a zip file)",
                          fix="pass a file written by torch.export.save or AOTInductor")
    extra = {META_KEY: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), extra[META_KEY]


FORMAT = ArtifactFormat(name="export", suffixes=(".pt2",), title="torch.export", load=load_exported,
                        export=export_bytes, named_weights=True)
