"""parity.compare: metrics, tolerances, divergence analysis, replay; ``verify`` and ``compare``."""

from parity.compare.metrics import TensorMetrics, compare_tensors
from parity.compare.result import VerifyResult
from parity.compare.tolerances import TolerancePolicy
from parity.compare.verify import compare, compare_records, verify

__all__ = ["TensorMetrics", "TolerancePolicy", "VerifyResult", "compare", "compare_records", "compare_tensors", "verify"]
