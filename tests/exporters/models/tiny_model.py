"""A tiny two-layer model, small enough for AOTInductor compilation in tests."""

from __future__ import annotations

import torch
from torch import nn

from parity.target import Pipeline


def build() -> Pipeline:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    rows = [torch.randn(4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    return Pipeline(model=model, example_inputs=rows, batch_size=3, name="tiny")
