"""Open-loop load through MLPerf LoadGen (``parity[loadgen]``): the Server and Offline scenarios.

**Server**: LoadGen issues queries at Poisson-distributed arrival times averaging ``qps``
per second, whether or not earlier ones have finished (open loop: a slow pipeline builds a
queue, as a real service does). Each query is one request (a batch of ``batch_size``
items, default 1); ``workers`` threads take requests from a queue, run them and report
completion. Latency is kept raw per query, from LoadGen's issue call to completion; the
figures of LoadGen's own summary (its percentiles count from the *scheduled* time, so
they include issue delay) are kept beside them under ``loadgen``.

**Offline**: LoadGen issues every sample at once; the workers run them in batches of
``batch_size`` items and the result is the throughput (samples/s). The sample count
LoadGen asks for comes from a short calibration of the pipeline's speed.

**Highest QPS under a p99 bound** (:func:`find_max_qps`): a bisection over the arrival
rate with short Server runs. The bracket starts at ``[0, 1.25 x capacity]``, where
capacity is the closed-loop rate the workers reach in a calibration burst (no open-loop
rate above it can keep p99 bounded for long); if that upper rate still passes, it is
doubled until one fails. Each probe runs at the middle of the bracket and passes when its
measured p99 is at most the bound *and* it completed at least 95% of the scheduled rate
(a run falling behind has an unbounded queue, whatever its short-run p99 says). The
search stops after ``probes`` runs or when the bracket is within 5% of its lower end.
The answer is the highest passing rate measured, with that probe's raw samples; every
probe is listed. Short runs make p99 rest on few samples: the report gives its CI.

Logs go to a temporary directory removed afterwards.
"""

from __future__ import annotations

import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.benchmark import stats
from parity.errors import BenchError
from parity.progress import ProgressEvent, ProgressFn

EXTRA_FIX = "pip install 'parity[loadgen]'"
#: A probe passes only if it completed at least this share of the scheduled rate.
KEEP_UP = 0.95
DEFAULT_PROBES = 8
_BRACKET_TOLERANCE = 0.05
_SUMMARY_FIELDS = {
    "completed_per_s": r"Completed samples per second\s*:\s*([\d.eE+-]+)",
    "scheduled_per_s": r"Scheduled samples per second\s*:\s*([\d.eE+-]+)",
    "samples_per_s": r"^Samples per second\s*:\s*([\d.eE+-]+)",
    "p50_ns": r"50\.00 percentile latency \(ns\)\s*:\s*(\d+)",
    "p90_ns": r"90\.00 percentile latency \(ns\)\s*:\s*(\d+)",
    "p99_ns": r"99\.00 percentile latency \(ns\)\s*:\s*(\d+)",
}


def require_loadgen() -> Any:
    """The ``mlperf_loadgen`` module, or BenchError naming the extra to install."""
    try:
        import mlperf_loadgen
    except ImportError as exc:
        raise BenchError(f"--scenario needs MLPerf LoadGen, which is not installed ({exc})",
                         fix=EXTRA_FIX) from None
    return mlperf_loadgen


@dataclass
class ScenarioRun:
    """One LoadGen run: raw latencies (seconds) and LoadGen's own summary figures."""

    scenario: str  # "server" | "offline"
    latencies: list[float]
    wall_s: float
    items: int
    target_qps: float | None = None
    loadgen: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)  # cpu_seconds, test_seconds, peak_rss_bytes, rss_basis

    def to_json(self) -> dict[str, Any]:
        from parity.benchmark.machine import usable_cores

        n = len(self.latencies)
        cpu_s, test_s, cores = self.usage.get("cpu_seconds"), self.usage.get("test_seconds"), usable_cores()
        busy = cpu_s / test_s if cpu_s is not None and test_s else None
        out: dict[str, Any] = {
            "scenario": self.scenario, "qps": self.target_qps, "requests": n, "items": self.items,
            "wall_s": self.wall_s,
            "throughput": {"requests_per_s": n / self.wall_s if self.wall_s > 0 else None,
                           "items_per_s": self.items / self.wall_s if self.wall_s > 0 else None,
                           "basis": "completed requests (items) / wall time of the run"},
            "cpu": {"seconds": cpu_s, "cores": cores, "busy_cores": busy,
                    "utilisation": busy / cores if busy is not None else None,
                    "basis": "process CPU time / LoadGen test wall time / usable cores"},
            "peak_rss_bytes": self.usage.get("peak_rss_bytes"), "rss_basis": self.usage.get("rss_basis"),
            "loadgen": self.loadgen,
        }
        if self.latencies:
            out["latency"] = {"samples": self.latencies, **stats.summarize(self.latencies)}
        return out


@dataclass
class ScenarioResult:
    """``load`` of a scenario document: the run reported and, for a search, every probe."""

    scenario: str
    run: ScenarioRun
    workers: int
    duration_s: float
    p99_bound_s: float | None = None
    max_qps: float | None = None
    probes: list[dict[str, Any]] | None = None
    capacity_per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        level = self.run.to_json()
        out: dict[str, Any] = {"kind": "scenario", "scenario": self.scenario, "workers": self.workers,
                               "duration_s": self.duration_s, "levels": [level]}
        if self.probes is not None:
            out["search"] = {"p99_bound_s": self.p99_bound_s, "max_qps": self.max_qps,
                             "capacity_per_s": self.capacity_per_s, "probes": self.probes,
                             "rule": f"p99 <= bound and completed >= {KEEP_UP:.0%} of the scheduled rate"}
        return out


# --------------------------------------------------------------------------- LoadGen plumbing


class _Workers:
    """Threads that run queued requests and tell LoadGen each one is complete."""

    def __init__(self, lg: Any, call: Callable[[Any], Any], n: int) -> None:
        self.lg, self.call = lg, call
        self.queue: queue.Queue[Any] = queue.Queue()
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.items = 0
        self.errors: list[BaseException] = []
        self.first: float | None = None
        self.last = 0.0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True, name=f"parity-loadgen-{i}")
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def submit(self, ids: list[int], request: Any, items: int) -> None:
        now = time.perf_counter()
        self.queue.put((ids, request, items, now))

    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            ids, request, items, issued = job
            started = time.perf_counter()
            try:
                if not self.errors:
                    self.call(request)
            except BaseException as exc:  # reported after the run; LoadGen still needs the completion
                self.errors.append(exc)
            done = time.perf_counter()
            with self._lock:
                self.latencies.append(done - issued)
                self.service.append(done - started)
                self.items += items
                self.first = issued if self.first is None else min(self.first, issued)
                self.last = max(self.last, done)
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(i, 0, 0) for i in ids])

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()
        if self.errors:
            exc = self.errors[0]
            raise BenchError(f"a request failed under LoadGen: {type(exc).__name__}: {exc}",
                             fix="run `parity bench TARGET` without --scenario to see the failing stage") from exc


def _start_test(lg: Any, settings: Any, issue: Callable[[Any], None], total: int,
                usage: dict[str, Any]) -> dict[str, Any]:
    """Run one LoadGen test; LoadGen's summary figures (logs in a temporary directory).
    ``usage`` gets the test's CPU seconds, wall seconds and peak RSS (as a concurrency level's)."""
    from parity.benchmark.load import _reset_peak_rss, _vm_hwm_bytes

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(total, total, lambda _s: None, lambda _s: None)
    try:
        with tempfile.TemporaryDirectory(prefix="parity-loadgen-") as logs:
            log = lg.LogSettings()
            log.log_output.outdir = logs
            log.log_output.copy_summary_to_stdout = False
            reset = _reset_peak_rss()
            cpu0, t0 = time.process_time(), time.perf_counter()
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
            usage.update(cpu_seconds=time.process_time() - cpu0, test_seconds=time.perf_counter() - t0,
                         peak_rss_bytes=_vm_hwm_bytes(),
                         rss_basis="this run's peak (VmHWM reset before it)" if reset else "process lifetime peak")
            return parse_summary(Path(logs) / "mlperf_log_summary.txt")
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


def parse_summary(path: Path) -> dict[str, Any]:
    """The figures parity keeps from ``mlperf_log_summary.txt`` (missing ones: None)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {"valid": None}
    out: dict[str, Any] = {}
    for name, pattern in _SUMMARY_FIELDS.items():
        m = re.search(pattern, text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else None
    m = re.search(r"Result is\s*:\s*(\w+)", text)
    out["valid"] = (m.group(1) == "VALID") if m else None
    return out


def _settings(lg: Any, scenario: str, duration_s: float, min_queries: int) -> Any:
    s = lg.TestSettings()
    s.scenario = lg.TestScenario.Server if scenario == "server" else lg.TestScenario.Offline
    s.mode = lg.TestMode.PerformanceOnly
    s.min_duration_ms = max(1, int(duration_s * 1000))
    s.max_duration_ms = max(s.min_duration_ms, int(duration_s * 1000 * 3))
    s.min_query_count = max(1, int(min_queries))
    return s


# --------------------------------------------------------------------------- scenarios


def run_server(call: Callable[[Any], Any], requests: Sequence[Any], qps: float, duration_s: float, *,
               workers: int = 1, items_per_request: int = 1, p99_bound_s: float | None = None) -> ScenarioRun:
    """The Server scenario at ``qps`` Poisson arrivals per second for ``duration_s`` seconds."""
    lg = require_loadgen()
    _check_positive(qps, "--qps", "pass a rate like --qps 20")
    _check_positive(duration_s, "--duration", "pass e.g. --duration 5s")
    settings = _settings(lg, "server", duration_s, 1)
    settings.server_target_qps = float(qps)
    if p99_bound_s is not None:
        settings.server_target_latency_ns = max(1, int(p99_bound_s * 1e9))
        settings.server_target_latency_percentile = 0.99
    pool = _Workers(lg, call, workers)
    reqs = list(requests)

    def issue(samples: Any) -> None:
        for s in samples:
            pool.submit([s.id], reqs[s.index], items_per_request)

    usage: dict[str, Any] = {}
    try:
        summary = _start_test(lg, settings, issue, len(reqs), usage)
    finally:
        pool.close()
    wall = pool.last - pool.first if pool.first is not None else 0.0
    return ScenarioRun("server", pool.latencies, wall, pool.items, float(qps), summary, usage)


def run_offline(call: Callable[[Any], Any], items: Sequence[Any], batch_size: int, duration_s: float, *,
                make_batch: Callable[[list[Any]], Any] = list, workers: int = 1,
                expected_per_s: float | None = None) -> ScenarioRun:
    """The Offline scenario: every sample at once, run in batches of ``batch_size``.

    ``expected_per_s`` sizes the query LoadGen issues (samples for ``duration_s``); None
    measures it first with a short closed-loop burst.
    """
    lg = require_loadgen()
    _check_positive(duration_s, "--duration", "pass e.g. --duration 5s")
    pool_items = list(items)
    if expected_per_s is None:
        expected_per_s = calibrate(call, [make_batch(pool_items[:batch_size] or pool_items)]) * batch_size
    settings = _settings(lg, "offline", duration_s, 1)
    settings.offline_expected_qps = max(1.0, float(expected_per_s))
    pool = _Workers(lg, call, workers)

    def issue(samples: Any) -> None:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            pool.submit([s.id for s in chunk], make_batch([pool_items[s.index] for s in chunk]), len(chunk))

    usage: dict[str, Any] = {}
    try:
        summary = _start_test(lg, settings, issue, len(pool_items), usage)
    finally:
        pool.close()
    wall = pool.last - pool.first if pool.first is not None else 0.0
    # every sample is issued at once, so time since issue is queueing: the per-batch
    # service time is the distribution two offline runs are compared on
    return ScenarioRun("offline", pool.service, wall, pool.items, None, summary, usage)


def calibrate(call: Callable[[Any], Any], requests: Sequence[Any], seconds: float = 0.5) -> float:
    """Requests per second one client thread reaches back to back, after one warm-up call
    per distinct request (a new input shape can cost a first call many times the next ones).

    It runs on a client thread, as the scenarios' workers do: with several intra-op
    threads on a busy machine a main-thread call was measured 10x slower than the same
    call from a worker thread, and the search would start far below the real capacity.
    """
    from parity.benchmark.load import run_concurrency

    level = run_concurrency(call, list(requests), [1], seconds, warmup_calls=len(requests)).levels[0]
    return float(level.requests_per_s or 0.0)


def _check_positive(value: float, flag: str, fix: str) -> None:
    if not (value > 0 and value < float("inf")):
        raise BenchError(f"{flag}: {value!r} must be a positive number", fix=fix)


# --------------------------------------------------------------------------- the search


def _probe_json(run: ScenarioRun, passed: bool) -> dict[str, Any]:
    doc = run.to_json()
    lat = doc.get("latency") or {}
    return {"qps": run.target_qps, "passed": passed, "p99": lat.get("p99"), "p99_ci": (lat.get("ci") or {}).get("p99"),
            "requests": doc["requests"], "completed_per_s": _completed_rate(run),
            "scheduled_per_s": run.loadgen.get("scheduled_per_s") or run.target_qps,
            "loadgen_valid": run.loadgen.get("valid")}


def _completed_rate(run: ScenarioRun) -> float:
    """Requests per second the run completed (LoadGen's figure when it gave one)."""
    return float(run.loadgen.get("completed_per_s") or (len(run.latencies) / run.wall_s if run.wall_s > 0 else 0.0))


def _passes(run: ScenarioRun, p99_bound_s: float) -> bool:
    if len(run.latencies) < 2 or run.target_qps is None:
        return False
    keeps_up = _completed_rate(run) >= KEEP_UP * (run.loadgen.get("scheduled_per_s") or run.target_qps)
    return keeps_up and stats.quantile(run.latencies, 0.99) <= p99_bound_s


def find_max_qps(call: Callable[[Any], Any], requests: Sequence[Any], p99_bound_s: float, duration_s: float, *,
                 workers: int = 1, items_per_request: int = 1, probes: int = DEFAULT_PROBES,
                 progress: ProgressFn | None = None) -> ScenarioResult:
    """The highest Poisson arrival rate whose p99 stays under ``p99_bound_s`` (see the module doc)."""
    require_loadgen()
    _check_positive(p99_bound_s, "--p99-ms", "pass a latency bound like --p99-ms 50")
    if probes < 1:
        raise BenchError(f"probes: {probes!r} must be 1 or more", fix="allow at least one probe run")
    capacity = calibrate(call, requests) * workers
    lo, hi = 0.0, 1.25 * capacity
    expanding = True  # no rate has failed yet: hi is a guess, not a bound
    best: ScenarioRun | None = None
    last: ScenarioRun | None = None
    tried: list[dict[str, Any]] = []
    for n in range(probes):
        q = hi if expanding else (lo + hi) / 2
        run = run_server(call, requests, q, duration_s, workers=workers, items_per_request=items_per_request,
                         p99_bound_s=p99_bound_s)
        ok = _passes(run, p99_bound_s)
        tried.append(_probe_json(run, ok))
        last = run
        if ok:
            lo, best = q, run
            hi = 2 * q if expanding else hi
        else:  # a run that fell behind completed about what the workers can do: no rate above passes
            hi, expanding = max(lo, min(q, 1.05 * _completed_rate(run))), False
        if progress is not None:
            progress(ProgressEvent("max-qps", n + 1, probes, "probes"))
        if not expanding and best is not None and hi - lo <= _BRACKET_TOLERANCE * lo:
            break
    shown = best or last
    assert shown is not None
    return ScenarioResult("server", shown, workers, duration_s, p99_bound_s,
                          best.target_qps if best else None, tried, capacity)


# --------------------------------------------------------------------------- a TARGET under LoadGen


@dataclass(frozen=True)
class ScenarioOptions:
    """What ``parity bench --scenario`` asks for (``qps`` for server unless searching)."""

    scenario: str  # "server" | "offline"
    duration_s: float
    qps: float | None = None
    p99_bound_s: float | None = None  # with find_max: the bound searched under
    find_max: bool = False
    workers: int = 1
    batch_size: int | None = None  # server: items per query (default 1); offline: per batch
    threads: int | None = None
    probes: int = DEFAULT_PROBES

    def validate(self) -> None:
        if self.scenario not in ("server", "offline"):
            raise BenchError(f"--scenario: {self.scenario!r} is not a scenario", fix="use server or offline")
        if self.scenario == "server" and not self.find_max and self.qps is None:
            raise BenchError("--scenario server needs --qps (or --find-max-qps --p99-ms L)",
                             fix="pass e.g. --qps 20")
        if self.find_max and (self.scenario != "server" or self.p99_bound_s is None):
            raise BenchError("--find-max-qps needs --scenario server and --p99-ms",
                             fix="pass --scenario server --find-max-qps --p99-ms 50")
        if self.workers < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise BenchError(f"--concurrency {self.workers} / --batch-size {self.batch_size}: must be 1 or more",
                             fix="use 1 or more")


def bench_scenario(target: Any, inputs: Any = None, *, options: ScenarioOptions,
                   progress: ProgressFn | None = None) -> Any:
    """``parity bench --scenario``: ``target`` under LoadGen; a ``LoadBench`` (parity.bench/1)."""
    from parity.benchmark.load import (
        finish_document,
        machine_before,
        pipeline_call,
        prepare_target,
        requests_from,
    )
    from parity.benchmark.protocol import _thread_limits

    options.validate()
    require_loadgen()
    prepared = prepare_target(target, inputs)
    default_batch = 1 if options.scenario == "server" else int(getattr(prepared.pipeline, "batch_size", 8) or 8)
    batch = options.batch_size or default_batch
    call = pipeline_call(prepared.pipeline)
    with _thread_limits(options.threads):
        machine = machine_before()
        if options.scenario == "offline":
            items = prepared.items
            run = run_offline(call, items, batch, options.duration_s, workers=options.workers,
                              make_batch=lambda xs: type(items)(xs))
            result = ScenarioResult("offline", run, options.workers, options.duration_s)
        elif options.find_max:
            assert options.p99_bound_s is not None
            result = find_max_qps(call, requests_from(prepared.items, batch), options.p99_bound_s,
                                  options.duration_s, workers=options.workers, items_per_request=batch,
                                  probes=options.probes, progress=progress)
        else:
            assert options.qps is not None
            run = run_server(call, requests_from(prepared.items, batch), options.qps, options.duration_s,
                             workers=options.workers, items_per_request=batch)
            result = ScenarioResult("server", run, options.workers, options.duration_s)
        return finish_document(prepared, batch, options.threads, result.to_json(), machine)
