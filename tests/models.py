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


# --- edge models: complex values, packed sequences, a forward signature that changes ---


class ComplexNet(nn.Module):
    """complex64 in, a complex64 Linear, the magnitude into a real head (a spectral filter)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.mix = nn.Linear(width, width, dtype=torch.complex64)
        self.head = nn.Linear(width, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(z).abs())


def complex_inputs(n: int = 4, width: int = 8) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.complex(torch.randn(width, generator=g), torch.randn(width, generator=g)) for _ in range(n)]


def build_complex() -> target.Pipeline:
    torch.manual_seed(0)
    return target.Pipeline(model=ComplexNet().eval(), example_inputs=complex_inputs(), batch_size=2,
                           name="complex")


class PackedLSTM(nn.Module):
    """Linear -> pack_padded_sequence -> LSTM -> head on the last hidden state: the LSTM's
    argument (and first output) is a PackedSequence, a named tuple."""

    def __init__(self, width: int = 6, hidden: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(width, width)
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torch.nn.utils.rnn import pack_padded_sequence

        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(h[-1])


def pad_sequences(items: list[Any]) -> dict[str, torch.Tensor]:
    """Variable-length ``[T][width]`` sequences (nested lists, as JSON holds them) ->
    zero-padded float batch and their lengths."""
    rows = [torch.as_tensor(item, dtype=torch.float32) for item in items]
    lengths = torch.tensor([len(t) for t in rows])
    x = torch.zeros(len(rows), int(lengths.max()), rows[0].shape[-1])
    for i, t in enumerate(rows):
        x[i, : len(t)] = t
    return {"x": x, "lengths": lengths}


def build_packed_lstm() -> target.Pipeline:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    seqs = [torch.randn(n, 6, generator=g).tolist() for n in (5, 2, 7, 3)]
    return target.Pipeline(model=PackedLSTM().eval(), preprocess=pad_sequences, example_inputs=seqs,
                           batch_size=2, name="packed-lstm")


class CacheBlock(nn.Module):
    """Release 1 of a block: ``forward(x, cache_length=None)``, as A's library has it."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cache_length: int | None = None) -> torch.Tensor:
        if cache_length is not None and cache_length < x.shape[0]:
            raise ValueError("cache too short")
        return torch.tanh(self.proj(x))


class Release2:
    """Release 2 of the block's library: the same class name, another signature."""

    class CacheBlock(nn.Module):
        """``cache_length`` is gone from the signature and the block scales its output
        (the API and the numbers changed together, as in a library upgrade)."""

        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.proj = nn.Linear(width, width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.proj(x)) * 1.01


class SignatureNet(nn.Module):
    """``block`` then ``head``; release 1 passes ``cache_length``, release 2 does not."""

    def __init__(self, v2: bool = False, width: int = 8) -> None:
        super().__init__()
        self.v2 = v2
        self.block = Release2.CacheBlock(width) if v2 else CacheBlock(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(x) if self.v2 else self.block(x, cache_length=x.shape[0])
        return self.head(h)


def build_signature_v1() -> nn.Module:
    torch.manual_seed(0)
    return SignatureNet(v2=False).eval()


def build_signature_v2() -> nn.Module:
    torch.manual_seed(0)
    return SignatureNet(v2=True).eval()
