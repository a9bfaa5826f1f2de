"""Build the demo's text classifier with seeded weights (no download, no training).

Weights are drawn from a private ``torch.Generator`` so the model is identical on
every machine and in every process, whatever the global RNG state. It is untrained:
its three classes are arbitrary, which is all a parity check needs.
"""

from __future__ import annotations

import math
from typing import Any

SEED = 20240611


def build_model(vocab_size: int, seed: int = SEED) -> Any:
    """A fresh ``TinyTextClassifier`` (see ``parity.demo._nn``) in eval mode."""
    import torch

    from parity.demo._nn import TinyTextClassifier

    model = TinyTextClassifier(vocab_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            _init(name, param, generator)
    return model.eval()


def _init(name: str, param: Any, generator: Any) -> None:
    import torch

    if "norm" in name:
        param.fill_(1.0 if name.endswith("weight") else 0.0)
    elif name.endswith("bias"):
        param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    else:
        # Embeddings get a wide spread so different tokens give clearly different outputs.
        std = 0.5 if name.startswith(("embed", "position")) else 1.0 / math.sqrt(param.shape[-1])
        param.copy_(torch.randn(param.shape, generator=generator) * std)
