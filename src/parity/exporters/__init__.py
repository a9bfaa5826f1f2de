"""parity.exporters: Python-free artifacts (TorchScript, torch.export, AOTInductor, ONNX),
checked for parity against eager and benchmarked beside it."""

from parity.exporters.api import FORMATS, METHODS, export
from parity.exporters.result import CaseResult, CheckResult, ExportResult, Finding, SubmoduleCheck

__all__ = ["FORMATS", "METHODS", "CaseResult", "CheckResult", "ExportResult", "Finding", "SubmoduleCheck", "export"]
