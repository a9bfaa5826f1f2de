"""parity.demo: the embedded model, tokenizer and drift scenarios behind ``parity demo``.

Importing this package does not import torch; :func:`run_demo` does.
"""

from parity.demo.run import DemoResult, ScenarioResult, run_demo

__all__ = ["DemoResult", "ScenarioResult", "run_demo"]
