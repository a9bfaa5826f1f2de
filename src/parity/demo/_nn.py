"""The demo classifier's modules. Imports torch at module level: import lazily."""

from __future__ import annotations

import math

import torch
from torch import nn

DIM, HEADS, HIDDEN, BLOCKS, CLASSES, MAX_LEN = 32, 2, 64, 2, 3, 32
DROPOUT = 0.1


class SelfAttention(nn.Module):
    """Multi-head self-attention from plain Linear layers (so every step has a layer key)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.out = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(DIM // HEADS)
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e9)
        y = scores.softmax(dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, n, DIM))


class Block(nn.Module):
    """Post-norm encoder block: attention and MLP, each with dropout and a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = SelfAttention()
        self.norm1 = nn.LayerNorm(DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, DIM))
        self.dropout = nn.Dropout(DROPOUT)
        self.norm2 = nn.LayerNorm(DIM)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x, mask)))
        return self.norm2(x + self.dropout(self.mlp(x)))


class TinyTextClassifier(nn.Module):
    """input_ids, attention_mask (batch, length) -> class logits (batch, CLASSES)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, DIM)
        self.position = nn.Embedding(MAX_LEN, DIM)
        self.norm_in = nn.LayerNorm(DIM)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.norm_in(self.embed(input_ids) + self.position(positions))
        for block in self.blocks:
            x = block(x, attention_mask)
        weights = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))
