"""A model whose code branches on the batch size: ``torch.export`` specialises it to 4."""

from __future__ import annotations

import torch
from torch import nn

from parity.target import Pipeline


class FixedBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 4:
            return x * 2
        return x * 3


def build() -> Pipeline:
    rows = [torch.full((3,), float(i)) for i in range(4)]
    return Pipeline(model=FixedBatch().eval(), example_inputs=rows, batch_size=4, name="fixed-batch")
