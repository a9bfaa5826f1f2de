"""What ``parity.export()`` returns: the artifact, its findings, its parity check, its bench."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parity.target.formats.job import Finding

SCHEMA = "parity.export/1"
SEVERITIES = ("error", "warning", "info")


@dataclass
class OutputCheck:
    """One output tensor of one check case: eager (reference) vs artifact."""

    name: str
    metrics: Any  # parity.comparison.metrics.TensorMetrics

    @property
    def ok(self) -> bool:
        return bool(self.metrics.ok)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "atol": self.metrics.atol, "rtol": self.metrics.rtol,
                "metrics": self.metrics.to_json()}


@dataclass
class CaseResult:
    """One set of model inputs run through eager and the artifact.

    ``error`` is set when the artifact refused or failed on these inputs (e.g. a shape
    it was specialised against); ``missing`` lists outputs only one side produced;
    ``skipped`` says why a generated variant was not compared (eager itself refused it).
    """

    label: str
    shapes: dict[str, list[int]]
    outputs: list[OutputCheck] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing and all(o.ok for o in self.outputs)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "shapes": self.shapes, "ok": self.ok, "error": self.error,
                "skipped": self.skipped,
                "missing": self.missing, "outputs": [o.to_json() for o in self.outputs]}


@dataclass
class SubmoduleCheck:
    """A submodule called alone in eager and in the TorchScript artifact on the same inputs."""

    module: str
    status: str  # match | diverged | skipped
    metrics: Any = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "status": self.status, "reason": self.reason,
                "metrics": self.metrics.to_json() if self.metrics is not None else None}


@dataclass
class CheckResult:
    """Eager vs artifact on the example inputs and on inputs of other shapes."""

    cases: list[CaseResult]
    submodules: list[SubmoduleCheck] = field(default_factory=list)
    tolerance: Any = None  # parity.exporters.check.CheckTolerance

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.cases) and not any(s.status == "diverged" for s in self.submodules)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "cases": [c.to_json() for c in self.cases],
                "submodules": [s.to_json() for s in self.submodules],
                "tolerance": self.tolerance.to_json() if self.tolerance is not None else None,
                "submodules_compared": sum(s.status != "skipped" for s in self.submodules)}


@dataclass
class ExportResult:
    """An exported artifact with the evidence about it.

    ``check`` is None with ``check=False``; ``bench`` is None unless asked for.
    ``ok`` is false when the parity check failed or an error-level finding was made.
    """

    target: str | None
    format: str
    out: str
    method: str | None
    static: bool
    size_bytes: int
    export_seconds: float
    input_names: list[str]
    output_names: list[str]
    dynamic: dict[str, dict[str, str]]
    findings: list[Finding] = field(default_factory=list)
    check: CheckResult | None = None
    bench: Any = None  # parity.exporters.side_by_side.SideBySide

    @property
    def ok(self) -> bool:
        if any(f.severity == "error" for f in self.findings):
            return False
        return self.check is None or self.check.passed

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "ok": self.ok, "target": self.target, "format": self.format,
            "out": self.out, "method": self.method, "static": self.static,
            "size_bytes": self.size_bytes, "export_seconds": self.export_seconds,
            "input_names": self.input_names, "output_names": self.output_names,
            "dynamic": self.dynamic, "findings": [f.to_json() for f in self.findings],
            "check": self.check.to_json() if self.check is not None else None,
            "bench": self.bench.to_json() if self.bench is not None else None,
        }
