"""The watch's gate: requests share the model, the canary and reloads have it alone."""

from __future__ import annotations

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
