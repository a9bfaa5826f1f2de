"""The watch's gate: requests share the model, the canary and reloads have it alone."""

from __future__ import annotations

import sys
import threading
import time

from parity.watch.gate import Gate


def test_exclusive_waits_for_running_requests_and_holds_new_ones():
    gate, order = Gate(), []
    gate.enter()  # a request is running
    entered = threading.Event()

    def canary() -> None:
        with gate.exclusive():
            entered.set()
            order.append("canary")
            time.sleep(0.05)

    def late_request() -> None:
        with gate.shared():
            order.append("request")

    t = threading.Thread(target=canary)
    t.start()
    time.sleep(0.05)
    assert not entered.is_set()  # still waiting for the running request
    late = threading.Thread(target=late_request)
    late.start()  # arrives while the canary waits: goes after it (no starvation)
    time.sleep(0.05)
    assert order == []
    gate.leave()
    t.join(5)
    late.join(5)
    assert order == ["canary", "request"]


def test_the_exclusive_holder_may_serve_and_reenter():
    gate = Gate()
    with gate.exclusive(), gate.exclusive(), gate.shared():  # a reload that calls the pipeline
        pass
    with gate.shared(), gate.shared():
        pass


def test_no_shared_holder_runs_beside_the_exclusive_one_under_contention():
    """The shared side takes no lock: a request and a canary racing for the gate must
    still never run at the same time, and nobody may be left waiting."""
    gate = Gate()
    inside = [0]  # shared holders running now
    overlaps: list[int] = []
    stop = threading.Event()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible

    errors: list[BaseException] = []

    def request() -> None:
        try:
            while not stop.is_set():
                gate.enter()
                inside[0] += 1
                time.sleep(0)
                inside[0] -= 1
                gate.leave()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def canary() -> None:
        for _ in range(300):
            with gate.exclusive():
                time.sleep(0)  # let the requests run, if they could
                if inside[0] or gate.holders:
                    overlaps.append(inside[0])

    try:
        requests = [threading.Thread(target=request) for _ in range(4)]
        for t in requests:
            t.start()
        canaries = [threading.Thread(target=canary) for _ in range(2)]
        for t in canaries:
            t.start()
        for t in canaries:
            t.join(60)
        stop.set()
        for t in requests:
            t.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in requests + canaries)
    assert overlaps == [] and errors == []
    assert gate.holders == [] and not gate.blocked
