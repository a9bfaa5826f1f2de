"""Memory does not grow with the requests a watch serves (10,000, with sampling and canaries)."""

from __future__ import annotations

import gc
import sys

import pytest
import torch

from parity.demo.scenarios import EXAMPLE_INPUTS

REQUESTS, WARMUP, CANARY_EVERY = 10_000, 1_000, 2_000
#: Python memory blocks (``sys.getallocatedblocks()``, free to read, unlike tracemalloc) that
#: may be added between request 2,000 and 10,000: one leaked object per 8 requests, or 25
#: per sampled call, would exceed it
TOLERANCE = 2_000


@pytest.mark.slow
def test_memory_does_not_grow_over_10000_requests(make_watch, pipeline):
    w = make_watch(pipeline, sample_every=100)
    batches = [[EXAMPLE_INPUTS[i % 8]] for i in range(8)]
    blocks: dict[int, int] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared machine, OpenMP threads waiting on busy cores cost 10x
    try:
        _serve(w, batches, blocks)
    finally:
        torch.set_num_threads(threads)
    status = w.status()
    assert (status.requests, status.sampled, sum(status.canaries.values())) == (REQUESTS, REQUESTS // 100, 5)
    growth = blocks[REQUESTS] - blocks[2 * WARMUP]
    assert growth < TOLERANCE, (f"{growth} more Python memory blocks after {REQUESTS - 2 * WARMUP} more requests "
                                f"({blocks})")


def _serve(w, batches, blocks):
    with torch.no_grad():
        for i in range(1, REQUESTS + 1):
            w(batches[i % 8])
            if i % CANARY_EVERY == 0:
                result = w.check()
                assert result.verdict != "FAIL", result.reason
                w.status()
            if i in (WARMUP, 2 * WARMUP, REQUESTS):
                gc.collect()
                blocks[i] = sys.getallocatedblocks()
