"""The definition behind :func:`parity.records.stats.content_hash`: the block size, the
keys and the generator they come from. Both ways of computing the hash use it, numpy in
:mod:`parity.records.stats` and the compiled kernel in :mod:`parity.records.native`, so
neither imports the other for it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

BLOCK = 4096  # uint32 words per hashed block
MASK = (1 << 64) - 1


def splitmix64(state: int) -> tuple[int, int]:
    """One step of splitmix64: (next state, output); plain Python, the same everywhere."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


@functools.lru_cache(maxsize=1)
def hash_keys() -> Any:
    """A fixed vector of odd 32-bit keys (splitmix64 from a fixed seed, so every machine
    and numpy version gets the same)."""
    state, words = 0x5EED0001, []
    for _ in range(BLOCK):
        state, z = splitmix64(state)
        words.append((z & 0xFFFFFFFF) | 1)
    return np.asarray(words, dtype="<u4")
