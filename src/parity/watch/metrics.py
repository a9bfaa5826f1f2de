"""Prometheus metrics of every open watch, read when Prometheus scrapes.

One collector per registry serves all the watches registered on it (label ``watch``), so
watches can come and go without "duplicated timeseries" errors, and requests pay nothing:
the figures are read from the watches at scrape time. ``prometheus-client`` is imported
here only, lazily; without it metrics are off and the watch says why.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

#: what the watch reports when metrics are off for want of the package
MISSING = "prometheus-client is not installed, so metrics are disabled (pip install 'parity[watch]')"
VERDICTS = ("PASS", "PASS-with-warnings", "FAIL", "ERROR", "NONE")
CAUSES = ("asset", "weight", "eval_mode", "api_change", "runtime", "architecture", "package", "environment",
          "unexplained")

_collectors: weakref.WeakKeyDictionary[Any, WatchCollector] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def attach(watch: Any, registry: Any = None) -> str | None:
    """Serve ``watch``'s metrics from ``registry`` (None: the global one). Returns None, or
    why metrics are off."""
    try:
        import prometheus_client
    except ImportError:
        return MISSING
    registry = prometheus_client.REGISTRY if registry is None else registry
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = WatchCollector()
            registry.register(collector)
        collector.add(watch)
    return None


def detach(watch: Any) -> None:
    with _lock:
        for collector in list(_collectors.values()):
            collector.discard(watch)


class WatchCollector:
    """A prometheus-client collector over weak references to watches."""

    def __init__(self) -> None:
        self._watches: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, watch: Any) -> None:
        self._watches.add(watch)

    def discard(self, watch: Any) -> None:
        self._watches.discard(watch)

    def describe(self) -> list[Any]:
        return list(self._families([]))

    def collect(self) -> Iterator[Any]:
        states = [w.metrics_state() for w in list(self._watches)]
        yield from self._families(states)

    def _families(self, states: list[dict[str, Any]]) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return GaugeMetricFamily(f"parity_watch_{name}", doc, labels=["watch", *labels])

        verdict = gauge("verdict", "1 on the last golden canary's verdict (NONE before the first).", ("verdict",))
        cause = gauge("probable_cause", "1 on the probable cause of the last failing canary.", ("kind",))
        age = gauge("canary_age_seconds", "Seconds since the last golden canary finished (NaN before one).")
        took = gauge("canary_duration_seconds", "How long the last golden canary took.")
        runs = CounterMetricFamily("parity_watch_canaries", "Golden canaries run, by verdict.",
                                   labels=["watch", "verdict"])
        requests = CounterMetricFamily("parity_watch_requests", "Requests served through the watch.",
                                       labels=["watch"])
        sampled = CounterMetricFamily("parity_watch_sampled_requests", "Requests summarised per layer.",
                                      labels=["watch"])
        overhead = SummaryMetricFamily("parity_watch_sampled_overhead_seconds",
                                       "Time a sampled request spent in parity (hooks and summaries).",
                                       labels=["watch"])
        drift = gauge("layer_drift", "Drift score per layer (heuristic: 0 inside the golden ranges).", ("layer",))
        drift_max = gauge("drift_max", "Largest layer drift score (heuristic).")
        out = gauge("layers_out_of_range", "Layers whose drift score is at or above the threshold.")
        for s in states:
            name = s["watch"]
            for v in VERDICTS:
                verdict.add_metric([name, v], 1.0 if s["verdict"] == v else 0.0)
            if s["cause"]:
                cause.add_metric([name, s["cause"]], 1.0)
            age.add_metric([name], s["age"])
            took.add_metric([name], s["duration"])
            for v, n in sorted(s["canaries"].items()):
                runs.add_metric([name, v], n)
            requests.add_metric([name], s["requests"])
            sampled.add_metric([name], s["sampled"])
            overhead.add_metric([name], s["sampled"], s["overhead_seconds"])
            for layer, value in s["drift"]:
                drift.add_metric([name, layer], value)
            drift_max.add_metric([name], max((v for _, v in s["drift"]), default=0.0))
            out.add_metric([name], s["out_of_range"])
        yield from (verdict, cause, age, took, runs, requests, sampled, overhead, drift, drift_max, out)
