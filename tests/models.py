"""Small models with the awkward shapes real models have, for capture and compare tests.

Import as ``from models import ...`` (tests/ is on sys.path under pytest) or point a
TARGET at ``tests/models.py:build_tiny_text``. Every build function seeds torch so A and
B build identical weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

import parity.target as target


class LoopNet(nn.Module):
    """One Linear called 3 times in a loop: keys ``step#0``, ``step#1``, ``step#2``."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.step = nn.Linear(width, width)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = self.act(self.step(x))
        return x


class SharedParamsNet(nn.Module):
    """Two Linears that share one weight (tied, like input/output embeddings)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.first = nn.Linear(width, width)
        self.second = nn.Linear(width, width)
        self.second.weight = self.first.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


class InplaceReluNet(nn.Module):
    """Linear -> ReLU(inplace=True): the ReLU overwrites the Linear's output tensor."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.fc(x)))


@dataclasses.dataclass
class Pair:
    """A dataclass output, as many detection/segmentation models return."""

    logits: torch.Tensor
    extra: Any


class NestedOutputNet(nn.Module):
    """Returns a dict holding a tuple, a dataclass, a None and an int."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        y = self.fc(x)
        return {"pair": (y, y * 2), "obj": Pair(logits=y.sum(-1), extra=None), "count": 3}


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class CustomFunctionNet(nn.Module):
    """A Linear followed by a custom autograd Function (square)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Square.apply(self.fc(x))


class HookedNet(nn.Module):
    """Its ``fc`` carries a user forward hook that adds 1 and counts its calls."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.hook_calls = 0
        self.fc.register_forward_hook(self._plus_one)

    def _plus_one(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        self.hook_calls += 1
        return output + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class SmallConvNet(nn.Module):
    """conv-bn-relu x2, pool, linear: a 3x32x32 image classifier with 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class TinyTextClassifier(nn.Module):
    """Byte embeddings, a GELU MLP with dropout, mean pooling, 3 classes."""

    def __init__(self, vocab: int = 259, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Dropout(0.1))
        self.head = nn.Linear(width, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.mlp(self.embed(input_ids))
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * mask).sum(1) / mask.sum(1).clamp(min=1))


def byte_tokenize(texts: list[Any], max_len: int = 32) -> dict[str, torch.Tensor]:
    """UTF-8 bytes + 3 (0 pads, 1 starts, 2 ends), padded to the longest text."""
    rows = [[1, *[b + 3 for b in str(t).encode("utf-8")[: max_len - 2]], 2] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def build_tiny_text() -> target.Pipeline:
    """The tiny text classifier as a Pipeline with preprocess, postprocess and examples."""
    torch.manual_seed(0)
    return target.Pipeline(
        model=TinyTextClassifier().eval(), preprocess=byte_tokenize,
        postprocess=lambda logits: logits.softmax(-1),
        example_inputs=["a short example", "another one", "a third, longer example text"],
        batch_size=2, name="tiny-text",
    )


def build(cls: type[nn.Module] = LoopNet) -> nn.Module:
    """A bare module (seeded), for ``file.py:build``-style targets."""
    torch.manual_seed(0)
    return cls().eval()


def build_loop() -> nn.Module:
    return build(LoopNet)


def build_conv() -> target.Pipeline:
    torch.manual_seed(0)
    images = [torch.randn(3, 32, 32) for _ in range(4)]
    return target.Pipeline(model=SmallConvNet().eval(), example_inputs=images, batch_size=2, name="conv")
