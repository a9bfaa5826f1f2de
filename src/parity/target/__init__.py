"""parity.target: what a TARGET is (a Pipeline), how it is loaded, and its inputs."""

from parity.target.inputs import TensorInputs, collate, iter_batches, load_inputs, model_input
from parity.target.loader import LoadedTarget, as_pipeline, load_target
from parity.target.pipeline import Pipeline

__all__ = [
    "LoadedTarget",
    "Pipeline",
    "TensorInputs",
    "as_pipeline",
    "collate",
    "iter_batches",
    "load_inputs",
    "load_target",
    "model_input",
]
