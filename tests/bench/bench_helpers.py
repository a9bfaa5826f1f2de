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
