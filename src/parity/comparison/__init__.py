"""parity.comparison: metrics, tolerances, divergence analysis, replay; ``verify`` and ``compare``."""

from parity.comparison.metrics import TensorMetrics, compare_tensors
from parity.comparison.result import VerifyResult
from parity.comparison.tolerances import TolerancePolicy
from parity.comparison.verification import compare, compare_records, verify

__all__ = ["TensorMetrics", "TolerancePolicy", "VerifyResult", "compare", "compare_records", "compare_tensors", "verify"]
