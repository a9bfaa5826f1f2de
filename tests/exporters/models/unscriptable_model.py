"""A model TorchScript's compiler rejects (``**kwargs`` in forward); tracing handles it."""

from __future__ import annotations

import torch
from torch import nn

from parity.target import Pipeline


class KwargsModel(nn.Module):
    def forward(self, x: torch.Tensor, **options: float) -> torch.Tensor:
        return x * options.get("scale", 2.0)


def build() -> Pipeline:
    return Pipeline(model=KwargsModel().eval(), example_inputs=[torch.ones(3), torch.zeros(3)], batch_size=2)
