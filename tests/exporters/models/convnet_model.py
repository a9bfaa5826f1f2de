"""A small conv net for export tests: TARGET ``tests/exporters/models/convnet_model.py:build``.

Raw inputs are 3x16x16 image tensors; there is no preprocess (rows are stacked).
"""

from __future__ import annotations

import torch
from torch import nn

from parity.target import Pipeline


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def build() -> Pipeline:
    torch.manual_seed(0)
    model = ConvNet().eval()
    images = [torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    return Pipeline(model=model, example_inputs=images, batch_size=2, name="convnet")
