"""The TARGET of the fleet tests: a small model with one step that reads a variable.

``TORCH_FLEET_TEST_SCALE`` (a name under the ``TORCH*`` prefix, so parity's snapshot
records it) scales the hidden activations: a node started with it set computes other
numbers, and its environment differs from the others' in exactly that variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from parity import Pipeline

#: The variable and value the planted node runs with, and this file as a TARGET.
PLANTED = {"TORCH_FLEET_TEST_SCALE": "1.5"}
TARGET = f"{Path(__file__).resolve()}:build"


class Scale(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.factor = float(os.environ.get("TORCH_FLEET_TEST_SCALE", "1"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def build() -> Pipeline:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), Scale(), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    gen = torch.Generator().manual_seed(1)
    return Pipeline(model=model, example_inputs=[torch.randn(4, generator=gen) for _ in range(4)], batch_size=2)
