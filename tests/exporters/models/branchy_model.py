"""A model whose output depends on a data-dependent Python branch.

``trace`` freezes the branch taken by the example; ``torch.export`` refuses it.
Raw inputs are lists of 4 numbers (``.jsonl`` rows); preprocess makes a float tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from parity.target import Pipeline


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 1.5
        if y.sum() > 0:
            return y * 2
        return y - 1


def build() -> Pipeline:
    return Pipeline(model=Branchy().eval(),
                    preprocess=lambda rows: torch.tensor(rows, dtype=torch.float32),
                    example_inputs=[[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], batch_size=2, name="branchy")
