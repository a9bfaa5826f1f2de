"""A sampled call's per-layer figures: the kernel read by data pointer gives the record's
stats, whatever the outputs look like, and the hooks go as they came."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from parity.records.stats import read_summary
from parity.watch.sampling import LayerSampler


class Odd(torch.nn.Module):
    """Outputs of every kind a hook meets: non-contiguous, float64, integer, empty, NaN,
    a tuple, the input itself, and an output changed in place by its parent."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 6)
        self.same = torch.nn.Identity()
        self.relu = torch.nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> tuple[Any, ...]:
        y = self.linear(x)  # summarised here, then changed in place by relu
        y = self.relu(self.same(y))
        return (y[:, ::2], y.double() * 3, (y > 0).long(), y[:0], y / 0.0, {"pair": (y + 1, y.sum())})


def _reference(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Each output's stats as the record takes them, at hook time."""
    want: dict[str, Any] = {}
    calls: dict[str, int] = {}

    def hook(path: str, module: Any, args: Any, output: Any) -> None:
        from parity.records.flatten import flatten

        call = calls[path] = calls.get(path, -1) + 1
        for out, value in flatten(output, "/out"):
            if isinstance(value, torch.Tensor):
                empty = value.numel() == 0
                want[f"{path}#{call}{out}"] = None if empty else read_summary(value, True, None).stats

    handles = [m.register_forward_hook(lambda *a, p=p: hook(p, *a)) for p, m in model.named_modules()]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return want


def test_figures_match_the_records_stats_for_every_kind_of_output():
    model = Odd()
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    want = _reference(model, x)
    sampler = LayerSampler(model)
    with torch.no_grad(), sampler:
        model(x)
    rows = {key: stats for key, _shape, _dtype, stats in sampler.rows}
    assert set(rows) == set(want) and len(rows) >= 10
    for key, stats in rows.items():
        ref = want[key]
        if ref is None or ref.get("mean") is None:
            assert stats is None or stats["mean"] is None, key
            continue
        assert stats is not None, key
        for name in ("min", "max", "mean", "std"):
            assert stats[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-6, nan_ok=True), (key, name)
        assert (stats["nan"], stats["inf"]) == (int(ref.get("nan") or 0), int(ref.get("inf") or 0)), key
    # the linear layer's output before relu changed it in place, not after
    assert rows["linear#0/out"]["min"] < 0 <= rows["relu#0/out"]["min"]
    assert any(s["nan"] and s["inf"] for s in rows.values() if s), "the NaN and Inf output"
    assert sampler.seconds > 0


def test_hooks_go_on_for_the_block_and_all_come_off():
    model = Odd()
    before = {p: dict(m._forward_hooks) for p, m in model.named_modules()}
    sampler = LayerSampler(model)
    with sampler:
        assert all(len(m._forward_hooks) == 1 for m in model.modules())
    assert {p: dict(m._forward_hooks) for p, m in model.named_modules()} == before
    handle = model.linear.register_forward_hook(lambda *a: None)  # torch's own ids go on after parity's
    assert len(model.linear._forward_hooks) == 1
    handle.remove()


def test_samplers_in_two_threads_keep_their_own_hooks():
    """Two sampled calls at once (a threaded server at a small sample_every): each sees
    only its own call's outputs and takes off only its own hooks."""
    import threading

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    inputs = [torch.full((1, 4), float(i)) for i in (1, 2)]
    ready, go = threading.Barrier(2), threading.Barrier(2)
    rows: dict[int, Any] = {}

    def call(i: int) -> None:
        sampler = LayerSampler(model)
        ready.wait(10)
        with torch.no_grad(), sampler:
            go.wait(10)  # both samplers' hooks are on now
            model(inputs[i])
        rows[i] = sampler.rows

    threads = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for i in (0, 1):
        assert [key for key, *_ in rows[i]] == ["0#0/out", "1#0/out", "#0/out"], rows[i]
        with torch.no_grad():
            assert rows[i][0][3]["mean"] == pytest.approx(model[0](inputs[i]).mean().item())
    assert all(not m._forward_hooks for m in model.modules())
