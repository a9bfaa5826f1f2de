"""Fakes and planted regressions shared by the bench tests (imported by name)."""

from __future__ import annotations

import time


class FakeClock:
    """perf_counter_ns stand-in: every read advances time by ``step_ns``."""

    def __init__(self, step_ns: int = 1_000_000) -> None:
        self.now = 0
        self.step_ns = step_ns
        self.reads = 0

    def __call__(self) -> int:
        self.now += self.step_ns
        self.reads += 1
        return self.now


def sleepy_postprocess(seconds: float):
    """A postprocess that sleeps ``seconds`` per call: a planted regression."""

    def post(out):
        time.sleep(seconds)
        return out

    return post


def synthetic_result(samples: dict, *, batch_size: int = 8, model: dict | None = None, env: dict | None = None,
                     threads: int | None = None, machine: dict | None = None) -> dict:
    """A parity.bench/1 document with the given raw samples (through the real BenchResult)."""
    from parity.benchmark.protocol import BenchConfig, BenchResult, Measurement

    measurement = Measurement(samples={k: list(v) for k, v in samples.items()},
                              cold_first_call={k: float(v[0]) for k, v in samples.items()},
                              warmup_calls=3, settled=True, machine=machine)
    return BenchResult(target="serve.py:build", model=model or {"name": "m", "class": "torch.nn.Linear",
                                                                 "parameters": 10, "kind": "callable"},
                       config=BenchConfig(batch_size=batch_size, threads=threads, min_time=0.1, min_iters=5),
                       items=batch_size, measurement=measurement, threads={"requested": threads},
                       env=env).to_json()


def lognormal(median: float, n: int = 200, sigma: float = 0.03, seed: int = 0) -> list:
    import numpy as np

    return list(median * np.random.default_rng(seed).lognormal(0.0, sigma, size=n))
