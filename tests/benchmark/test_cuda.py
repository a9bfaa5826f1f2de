"""The GPU path with CUDA faked: a subclass of the real CudaTimer, no GPU needed."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from bench_helpers import FakeClock

from parity.benchmark import BenchConfig, bench, protocol
from parity.benchmark._cuda import CudaTimer, _cuda_device_of, cuda_timer_for
from parity.benchmark.protocol import END_TO_END, measure


class FakeCudaTimer(CudaTimer):
    """Records every call; the device 'takes' ``model_seconds`` per model stage."""

    def __init__(self, model_seconds: float = 0.004) -> None:  # no torch.cuda: no GPU here
        self.model_seconds = model_seconds
        self.log: list[str] = []
        self.open_events = 0

    def device_name(self) -> str:
        return "Fake GPU"

    def synchronize(self) -> None:
        self.log.append("sync")

    def start(self) -> object:
        self.log.append("start")
        self.open_events += 1
        return object()

    def elapsed_since(self, start: object) -> float:
        self.log.append("elapsed")
        self.open_events -= 1
        return self.model_seconds

    def reset_peak_memory(self) -> None:
        self.log.append("reset_peak")

    def peak_allocated_bytes(self) -> int:
        return 123 << 20


def test_model_stage_is_timed_by_device_events_and_other_stages_synchronised(tiny_pipeline):
    fake = FakeCudaTimer(model_seconds=0.004)
    m = measure(tiny_pipeline, ["a", "b"], BenchConfig(batch_size=2, min_time=0.0, min_iters=6, max_warmup=2),
                clock=FakeClock(), cuda=fake)
    assert m.samples["model"] == [0.004] * 6  # device time, not the host clock
    assert m.samples["preprocess"] == [0.001] * 6  # host clock (1 ms per read in FakeClock)
    assert m.gpu == {"device": "Fake GPU", "peak_allocated_bytes": 123 << 20, "model_timing": "cuda_events"}
    assert fake.log[0] == "reset_peak" or fake.log[:2] == ["sync", "reset_peak"]
    assert fake.open_events == 0
    # Per call: sync before the call, start+elapsed around the model, sync after pre- and postprocess.
    calls = 2 + 6
    assert fake.log.count("start") == fake.log.count("elapsed") == calls
    assert fake.log.count("sync") == 1 + calls * 3


def test_call_order_brackets_the_model_with_events(tiny_pipeline):
    fake = FakeCudaTimer()
    measure(tiny_pipeline, ["a"], BenchConfig(batch_size=1, min_time=0.0, min_iters=1, max_warmup=1),
            clock=FakeClock(), cuda=fake)
    one_call = fake.log[2:7]
    assert one_call == ["sync", "sync", "start", "elapsed", "sync"]


def test_bench_uses_the_cuda_timer_for_a_gpu_model(tiny_pipeline, monkeypatch):
    monkeypatch.setattr(protocol, "cuda_timer_for", lambda model: FakeCudaTimer(model_seconds=0.002))
    doc = bench(tiny_pipeline, min_time=0.0, min_iters=3, max_warmup=1).to_json()
    assert doc["gpu"]["peak_allocated_bytes"] == 123 << 20
    assert doc["stages"]["model"]["samples"] == [0.002] * 3
    assert doc["stages"][END_TO_END]["p50"] > 0


def test_cpu_models_and_plain_callables_get_no_cuda_timer():
    assert cuda_timer_for(torch.nn.Linear(2, 2)) is None
    assert cuda_timer_for(lambda x: x) is None


def test_a_parameter_on_cuda_selects_its_device():
    on_gpu = SimpleNamespace(device=SimpleNamespace(type="cuda", index=1))
    model = SimpleNamespace(parameters=lambda: [on_gpu], buffers=lambda: [])
    assert _cuda_device_of(model) is on_gpu.device
