"""parity.exporters: Python-free artifacts (TorchScript, torch.export, AOTInductor, ONNX),
checked for parity against eager and benchmarked beside it. The formats themselves (load,
write, recognise) are the registry :mod:`parity.target.formats`."""

from parity.exporters.api import FORMATS, METHODS, export
from parity.exporters.result import CaseResult, CheckResult, ExportResult, Finding, SubmoduleCheck

__all__ = ["FORMATS", "METHODS", "CaseResult", "CheckResult", "ExportResult", "Finding", "SubmoduleCheck", "export"]
