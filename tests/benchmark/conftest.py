"""Tiny pipelines and fakes shared by the bench tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_pipeline():
    """Text -> lengths tensor -> Linear -> mean: three cheap stages."""
    import torch

    from parity.target import Pipeline

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2).eval()

    def preprocess(texts):
        return torch.tensor([[float(len(t)), 1.0, 2.0, 3.0] for t in texts])

    return Pipeline(model=model, preprocess=preprocess, postprocess=lambda out: out.mean(dim=1),
                    example_inputs=["a", "bb", "ccc"], batch_size=4, name="tiny")


class QuietWatch:
    """parity.benchmark.machine.MachineWatch on a machine that is always quiet: for
    tests whose timings are virtual (a fake clock) or whose point is the verdict rule."""

    def __init__(self, threads: int) -> None:
        import types

        self.threads = threads
        self.canary = types.SimpleNamespace(run=lambda: None)

    def finish(self) -> dict:
        return {"threads": self.threads, "disturbed": False, "reasons": [], "canary": None}


@pytest.fixture
def quiet_machine(monkeypatch):
    """Every benchmark in the test sees a quiet machine (the timings stay real)."""
    from parity.benchmark import protocol

    monkeypatch.setattr(protocol, "MachineWatch", QuietWatch)
