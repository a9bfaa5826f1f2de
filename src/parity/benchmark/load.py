"""Closed-loop load: the same call from N client threads (or N worker processes) at once.

:func:`run_concurrency` is the engine: for each concurrency level, N clients call
``call(request)`` back to back for ``duration_s`` seconds, cycling through ``inputs``
(each client starts at its own offset). Every completed request's latency is kept raw;
a level reports requests/s, p50/p90/p99 latency with order-statistic CIs
(:func:`parity.benchmark.stats.summarize`), CPU use (process CPU seconds / wall / usable
cores) and peak resident memory.

Threads share one loaded model, so Python code between tensor ops contends for the GIL;
``processes=True`` runs N worker processes (``spawn``), each with its own interpreter and
its own copy of the model: the difference between the two at the same N is what the GIL
costs. With processes, ``call`` must pickle; an object with a ``setup()`` method (see
:class:`TargetCall`) loads its model in each worker before the clock starts.

Peak memory: in thread mode the process's RSS high-water mark (``VmHWM``) is reset before
each level (Linux ``/proc/self/clear_refs``), so it is that level's own peak; where the
reset is refused the figure is the process's lifetime peak and ``rss_basis`` says so. In
process mode it is the sum of the workers' lifetime peaks (model load included: what N
copies cost).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from parity.benchmark import stats
from parity.benchmark.machine import usable_cores
from parity.errors import BenchError
from parity.progress import ProgressEvent, ProgressFn

#: Calls each client makes before the clock starts (per level; a thread's first call
#: can pay one-off costs: thread-local pools, lazy initialisation).
WARMUP_CALLS = 2
DEFAULT_LEVELS = (1, 2, 4, 8)
DEFAULT_DURATION_S = 5.0
#: A worker process that has not reported this long after the level should end is stuck.
_WORKER_GRACE_S = 300.0


@dataclass
class ClientRun:
    """What one client (thread or process) did during a level."""

    latencies: list[float]
    first_start: float  # perf_counter() seconds (system-wide monotonic clock on Linux)
    last_end: float
    cpu_seconds: float | None = None  # processes: the worker's own CPU time in the window
    peak_rss_bytes: int | None = None  # processes: the worker's VmHWM
    error: str | None = None


@dataclass
class LevelResult:
    """One concurrency level: raw latencies and what the machine spent on them."""

    concurrency: int
    latencies: list[float]
    wall_s: float
    cpu_seconds: float | None
    cores: int
    peak_rss_bytes: int | None
    rss_basis: str
    items_per_request: int = 1

    @property
    def requests_per_s(self) -> float | None:
        return len(self.latencies) / self.wall_s if self.wall_s > 0 else None

    def to_json(self) -> dict[str, Any]:
        rps = self.requests_per_s
        cpu: dict[str, Any] = {"seconds": self.cpu_seconds, "cores": self.cores, "busy_cores": None,
                               "utilisation": None, "basis": "process CPU time / wall / usable cores"}
        if self.cpu_seconds is not None and self.wall_s > 0:
            cpu["busy_cores"] = self.cpu_seconds / self.wall_s
            cpu["utilisation"] = cpu["busy_cores"] / self.cores
        return {
            "concurrency": self.concurrency,
            "requests": len(self.latencies),
            "wall_s": self.wall_s,
            "throughput": {"requests_per_s": rps,
                           "items_per_s": rps * self.items_per_request if rps is not None else None,
                           "basis": "completed requests / wall time of the level"},
            "latency": {"samples": self.latencies, **stats.summarize(self.latencies)},
            "cpu": cpu,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rss_basis": self.rss_basis,
        }


@dataclass
class LoadResult:
    """Every level of one closed-loop run (``kind`` "concurrency")."""

    mode: str  # "threads" | "processes"
    duration_s: float
    levels: list[LevelResult] = field(default_factory=list)
    warmup_calls: int = WARMUP_CALLS

    def to_json(self) -> dict[str, Any]:
        return {"kind": "concurrency", "mode": self.mode, "duration_s": self.duration_s,
                "warmup_calls": self.warmup_calls, "levels": [lv.to_json() for lv in self.levels]}


# --------------------------------------------------------------------------- public API


def run_concurrency(call: Callable[[Any], Any], inputs: Sequence[Any], levels: Sequence[int],
                    duration_s: float, processes: bool = False, *, items_per_request: int = 1,
                    warmup_calls: int = WARMUP_CALLS, progress: ProgressFn | None = None) -> LoadResult:
    """Drive ``call`` from N clients at each of ``levels`` for ``duration_s`` seconds each.

    ``call`` takes one element of ``inputs`` (one request). ``processes``: N spawned
    worker processes instead of N threads; ``call`` must then pickle, and its ``setup()``
    (if any) runs in each worker before warm-up. ``items_per_request`` turns requests/s
    into items/s. Raises :class:`BenchError` for bad levels or when a request fails.
    """
    levels = check_levels(levels, duration_s)
    if not inputs:
        raise BenchError("no inputs to send as requests", fix="pass at least one input")
    result = LoadResult("processes" if processes else "threads", float(duration_s), warmup_calls=warmup_calls)
    for done, n in enumerate(levels):
        runner = _level_in_processes if processes else _level_in_threads
        result.levels.append(runner(call, list(inputs), n, float(duration_s), warmup_calls, items_per_request))
        if progress is not None:
            progress(ProgressEvent("load", done + 1, len(levels), "levels"))
    return result


def check_levels(levels: Sequence[int], duration_s: float) -> list[int]:
    """``levels`` as a list of distinct ints >= 1 in the order given; BenchError naming the flag."""
    out = [int(n) for n in levels]
    if not out or any(n < 1 for n in out) or len(set(out)) != len(out):
        raise BenchError(f"--concurrency: {','.join(map(str, levels))!r} is not a list of distinct levels >= 1",
                         fix="pass levels like --concurrency 1,2,4,8")
    if not (duration_s > 0 and duration_s < float("inf")):
        raise BenchError(f"--duration: {duration_s!r} is not a positive duration", fix="pass e.g. --duration 5s")
    return out


def parse_levels(text: str) -> list[int]:
    """``"1,2,4,8"`` -> [1, 2, 4, 8]; BenchError naming ``--concurrency`` otherwise."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"--concurrency: {text!r} is not a comma-separated list of integers",
                         fix="pass levels like --concurrency 1,2,4,8") from None


def parse_duration(text: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1m"`` or ``"3"`` (seconds) -> seconds; BenchError otherwise."""
    units = (("ms", 1e-3), ("s", 1.0), ("m", 60.0))
    raw = text.strip().lower()
    scale = 1.0
    for suffix, factor in units:
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)], factor
            break
    try:
        seconds = float(raw) * scale
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds < float("inf")):
        raise BenchError(f"--duration: {text!r} is not a positive duration", fix="pass e.g. --duration 5s or 500ms")
    return seconds


# --------------------------------------------------------------------------- threads


def _client_loop(call: Callable[[Any], Any], inputs: list[Any], offset: int, deadline_after: float,
                 warmup_calls: int, start: Callable[[], object]) -> ClientRun:
    """Warm up, wait for every client (``start``), then call back to back until the deadline."""
    requests = itertools.islice(itertools.cycle(inputs), offset % len(inputs), None)
    for _ in range(warmup_calls):
        call(next(requests))
    start()
    t_first = time.perf_counter()
    deadline = t_first + deadline_after
    latencies: list[float] = []
    t_end = t_first
    while t_end < deadline:
        t0 = time.perf_counter()
        call(next(requests))
        t_end = time.perf_counter()
        latencies.append(t_end - t0)
    return ClientRun(latencies, t_first, t_end)


def _level_in_threads(call: Callable[[Any], Any], inputs: list[Any], n: int, duration_s: float,
                      warmup_calls: int, items_per_request: int) -> LevelResult:
    barrier = threading.Barrier(n + 1)
    runs: list[ClientRun | None] = [None] * n
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            runs[i] = _client_loop(call, inputs, i, duration_s, warmup_calls, barrier.wait)
        except BaseException as exc:  # reported below, with the request's error
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,), daemon=True, name=f"parity-load-{i}") for i in range(n)]
    for t in threads:
        t.start()
    hwm_reset = _reset_peak_rss()
    cpu0 = time.process_time()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    _raise_first(errors, [r.error for r in runs if r is not None])
    done = [r for r in runs if r is not None]
    wall = max(r.last_end for r in done) - min(r.first_start for r in done)
    return LevelResult(n, _merged(done), wall, cpu, usable_cores(), _vm_hwm_bytes(),
                       "this level's peak (VmHWM reset before it)" if hwm_reset else "process lifetime peak",
                       items_per_request)


def _merged(runs: list[ClientRun]) -> list[float]:
    return [x for r in runs for x in r.latencies]


def _raise_first(errors: list[BaseException], messages: list[str | None]) -> None:
    # a worker that failed makes the others' barrier break: its own message comes first
    failed = sorted((m for m in messages if m), key=lambda m: m.startswith("BrokenBarrierError"))
    if errors and not isinstance(errors[0], threading.BrokenBarrierError):
        exc = errors[0]
        if isinstance(exc, BenchError):
            raise exc
        raise BenchError(f"a request failed under load: {type(exc).__name__}: {exc}",
                         fix="run `parity bench TARGET` without --concurrency to see the failing stage") from exc
    if failed or errors:
        raise BenchError(f"a request failed under load: {(failed or ['a client stopped'])[0]}",
                         fix="run `parity bench TARGET` without --concurrency to see the failing stage")


# --------------------------------------------------------------------------- processes


def _worker(call: Callable[[Any], Any], inputs: list[Any], offset: int, duration_s: float, warmup_calls: int,
            barrier: Any, out: Any) -> None:
    """One worker process: set up, warm up, wait for the others, run; put a ClientRun on ``out``."""
    try:
        setup = getattr(call, "setup", None)
        if callable(setup):
            setup()
        cpu: list[float] = []

        def start() -> None:
            barrier.wait()
            cpu.append(time.process_time())

        run = _client_loop(call, inputs, offset, duration_s, warmup_calls, start)
        run.cpu_seconds = time.process_time() - cpu[0]
        run.peak_rss_bytes = _vm_hwm_bytes()
        out.put((offset, run))
    except BaseException as exc:  # the parent turns it into a BenchError
        barrier.abort()
        out.put((offset, ClientRun([], 0.0, 0.0, error=f"{type(exc).__name__}: {exc}")))


def _level_in_processes(call: Callable[[Any], Any], inputs: list[Any], n: int, duration_s: float,
                        warmup_calls: int, items_per_request: int) -> LevelResult:
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")  # fork after torch started its thread pools can hang
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(call, inputs, i, duration_s, warmup_calls, barrier, out),
                         daemon=True, name=f"parity-load-{i}") for i in range(n)]
    for p in procs:
        p.start()
    runs: list[ClientRun] = []
    try:
        for _ in range(n):
            runs.append(out.get(timeout=_WORKER_GRACE_S + duration_s)[1])
    except queue.Empty:
        raise BenchError(f"a worker process did not report within {_WORKER_GRACE_S + duration_s:.0f} s",
                         fix="run `parity bench TARGET` without --processes to see whether the target loads") from None
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    _raise_first([], [r.error for r in runs])
    wall = max(r.last_end for r in runs) - min(r.first_start for r in runs)
    cpu = sum(r.cpu_seconds or 0.0 for r in runs)
    peaks = [r.peak_rss_bytes for r in runs]
    peak = sum(p for p in peaks if p is not None) if all(p is not None for p in peaks) else None
    return LevelResult(n, _merged(runs), wall, cpu, usable_cores(), peak,
                       "sum of the workers' lifetime peaks (model load included)", items_per_request)


# --------------------------------------------------------------------------- memory


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux); False when refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _vm_hwm_bytes() -> int | None:
    """This process's RSS high-water mark (Linux ``VmHWM``), as ``parity bench`` reads it."""
    from parity.benchmark.protocol import _vm_hwm_bytes as vm_hwm

    return vm_hwm()


# --------------------------------------------------------------------------- a TARGET under load


def pipeline_call(pipeline: Any, model_only: bool = False) -> Callable[[Any], Any]:
    """One request through ``pipeline``: preprocess (or collate), model, postprocess, no grad.
    ``model_only``: the request is already the model's input (see :func:`model_inputs`)."""
    from parity.target import TensorInputs, collate
    from parity.target.pipeline import postprocess_caller

    if model_only:
        def model(x: Any) -> Any:
            import torch

            with torch.no_grad():
                return pipeline.call_model(x)

        return model
    pre = getattr(pipeline, "preprocess", None)
    post = postprocess_caller(pipeline.postprocess) if getattr(pipeline, "postprocess", None) else None

    def call(batch: Any) -> Any:
        import torch

        with torch.no_grad():
            x = collate(batch) if pre is None or isinstance(batch, TensorInputs) else pre(batch)
            out = pipeline.call_model(x)
            return post(out, x) if post is not None else out

    return call


def model_inputs(pipeline: Any, requests: list[Any]) -> list[Any]:
    """Each request preprocessed (or collated) once, outside any timing: the model's input."""
    import torch

    from parity.target import TensorInputs, collate

    pre = getattr(pipeline, "preprocess", None)
    with torch.no_grad():
        return [collate(r) if pre is None or isinstance(r, TensorInputs) else pre(r) for r in requests]


class TargetCall:
    """A picklable request callable for worker processes: ``setup()`` loads the TARGET spec
    in the worker (and sets its torch threads), then each call runs one request."""

    def __init__(self, spec: str, threads: int | None = None, model_only: bool = False) -> None:
        self.spec = spec
        self.threads = threads
        self.model_only = model_only
        self._call: Callable[[Any], Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "threads": self.threads, "model_only": self.model_only, "_call": None}

    def setup(self) -> None:
        from parity.target import load_target

        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        self._call = pipeline_call(load_target(self.spec).pipeline, self.model_only)

    def __call__(self, request: Any) -> Any:
        if self._call is None:
            self.setup()
        assert self._call is not None
        return self._call(request)


def requests_from(items: list[Any], batch_size: int, limit: int = 64) -> list[Any]:
    """Distinct requests of ``batch_size`` items each, starting at successive inputs
    (cycling), at most ``limit``; tensor rows stay tensor rows."""
    n = max(1, min(len(items), limit))
    out = []
    for start in range(n):
        rotated = type(items)(itertools.islice(itertools.cycle(items), start, start + batch_size))
        out.append(rotated)
    return out


@dataclass
class LoadBench:
    """A ``parity.bench/1`` document whose figures are under ``load`` (``stages`` is empty):
    a concurrency run (:class:`LoadResult`) or a LoadGen scenario (``benchmark.loadgen``)."""

    target: str | None
    model: dict[str, Any]
    batch_size: int
    threads: int | None
    load: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None
    thread_state: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] | None = None
    env: dict[str, Any] | None = None
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        from parity.benchmark.protocol import SCHEMA

        return {
            "schema": SCHEMA, "created": self.created, "target": self.target, "model": self.model,
            "batch_size": self.batch_size, "items": self.batch_size, "inputs": self.inputs,
            "threads": self.thread_state,
            "config": {"batch_size": self.batch_size, "threads": self.threads, "min_time": None,
                       "min_iters": None, "max_warmup": None},
            "load_seconds": self.load_seconds, "stages": {}, "load": self.load,
            "peak_rss_bytes": _peak_of(self.load), "gpu": None, "machine": self.machine,
            "warnings": load_warnings(self.load), "env": self.env,
        }


def _peak_of(load: dict[str, Any]) -> int | None:
    """The highest RSS peak of the run: its levels' and this process's current high-water mark."""
    peaks = [lv.get("peak_rss_bytes") for lv in load.get("levels", [])] + [_vm_hwm_bytes()]
    known = [p for p in peaks if isinstance(p, int)]
    return max(known) if known else None


def load_warnings(load: dict[str, Any]) -> list[str]:
    """Levels too short to trust: fewer than 20 requests make p99 a guess."""
    thin = [level_name(load, lv) for lv in load.get("levels", []) if lv.get("requests", 0) < 20]
    return [f"few requests at {', '.join(thin)}: percentiles rest on under 20 samples; raise --duration"
            ] if thin else []


@dataclass
class PreparedTarget:
    """A loaded TARGET with its inputs, ready to be put under load."""

    pipeline: Any
    spec: str | None
    kind: str
    load_seconds: float | None
    items: list[Any]
    inputs_info: dict[str, Any]


def prepare_target(target: Any, inputs: Any = None) -> PreparedTarget:
    """Load ``target`` (spec, LoadedTarget or Pipeline) and its inputs, as ``bench`` does."""
    from parity.benchmark.protocol import _resolve_inputs, _resolve_target

    pipeline, spec, kind, load_seconds = _resolve_target(target)
    items, info = _resolve_inputs(inputs, pipeline)
    return PreparedTarget(pipeline, spec, kind, load_seconds, items, info)


def finish_document(prepared: PreparedTarget, batch_size: int, threads: int | None,
                    load: dict[str, Any], machine: dict[str, Any] | None) -> LoadBench:
    """The :class:`LoadBench` of a run on ``prepared``, stamped with the environment."""
    from parity.benchmark.protocol import _env_snapshot, _model_identity, _now, _thread_state

    return LoadBench(target=prepared.spec, model=_model_identity(prepared.pipeline, prepared.kind),
                     batch_size=batch_size, threads=threads, load=load, inputs=prepared.inputs_info,
                     load_seconds=prepared.load_seconds, thread_state=_thread_state(threads), machine=machine,
                     env=_env_snapshot(), created=_now())


def machine_before() -> dict[str, Any]:
    """The machine's speed just before a load run (its canary, a few times) and its load
    average. Only the canary is kept for drift: during the run the load itself busies the CPUs."""
    import torch

    from parity.benchmark.machine import MachineWatch

    watch = MachineWatch(torch.get_num_threads())
    for _ in range(5):
        watch.canary.run()
    state = watch.finish()
    return {"canary": state.get("canary"), "load_avg": state.get("load_avg"), "usable_cores": usable_cores(),
            "disturbed": False, "reasons": [], "basis": "canary before the load only"}


def bench_load(target: Any, inputs: Any = None, *, levels: Sequence[int] = DEFAULT_LEVELS,
               duration_s: float = DEFAULT_DURATION_S, processes: bool = False, batch_size: int | None = None,
               threads: int | None = None, model_only: bool = False,
               progress: ProgressFn | None = None) -> LoadBench:
    """``parity bench --concurrency``: ``target`` under closed-loop load at each level.

    A request is one batch of ``batch_size`` items (default 1: one item per request, as a
    server sees them). ``processes`` needs a TARGET spec: each worker loads it itself.
    ``model_only``: requests are preprocessed beforehand and only the model is called
    (``export --bench``: an artifact has no Python preprocess to compare).
    """
    from parity.benchmark.protocol import _thread_limits

    levels = check_levels(levels, duration_s)
    batch = 1 if batch_size is None else int(batch_size)
    if batch < 1 or (threads is not None and threads < 1):
        raise BenchError(f"--batch-size {batch} / --threads {threads}: must be 1 or more", fix="use 1 or more")
    prepared = prepare_target(target, inputs)
    if processes and prepared.spec is None:
        raise BenchError("--processes needs a TARGET spec: each worker process loads the target itself",
                         fix="pass a TARGET spec (file.py:build, a module, an artifact file)")
    requests = requests_from(prepared.items, batch)
    with _thread_limits(threads):
        if model_only:
            requests = model_inputs(prepared.pipeline, requests)
        machine = machine_before()
        call: Callable[[Any], Any] = (TargetCall(str(prepared.spec), threads, model_only) if processes
                                      else pipeline_call(prepared.pipeline, model_only))
        result = run_concurrency(call, requests, levels, duration_s, processes,
                                 items_per_request=batch, progress=progress)
        load = {**result.to_json(), "stage": "model" if model_only else "pipeline"}
        return finish_document(prepared, batch, threads, load, machine)


# --------------------------------------------------------------------------- comparison


def level_name(load: dict[str, Any], level: dict[str, Any]) -> str:
    """How a level is named in a comparison: "4 threads", "server 20 qps", "offline"."""
    if load.get("kind") == "concurrency":
        n, processes = level.get("concurrency"), load.get("mode") == "processes"
        return f"{n} {'process' if processes else 'thread'}{'' if n == 1 else ('es' if processes else 's')}"
    if load.get("scenario") == "server":
        return f"server {level.get('qps'):.4g} qps"
    return str(load.get("scenario"))


def load_flags(load: dict[str, Any]) -> str:
    """The flags that reproduce ``load``'s levels (for a fix line)."""
    if load.get("kind") == "concurrency":
        levels = ",".join(str(lv.get("concurrency")) for lv in load.get("levels", []))
        return f"--concurrency {levels}" + (" --processes" if load.get("mode") == "processes" else "")
    if load.get("scenario") == "server":
        qps = (load.get("levels") or [{}])[0].get("qps")
        return f"--scenario server --qps {qps:.4g}" if isinstance(qps, (int, float)) else "--scenario server"
    return f"--scenario {load.get('scenario')}"


def load_pairs(current: dict[str, Any], baseline: dict[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
    """Per level, (current, baseline) raw latencies; BenchError when the levels differ."""
    cur, base = current.get("load"), baseline.get("load")
    if not isinstance(cur, dict) or not isinstance(base, dict):
        side = "the baseline" if isinstance(cur, dict) else "this run"
        raise BenchError(f"{side} is a stage benchmark and the other a load run: they measure different things",
                         fix=(f"re-run with the baseline's flags: {load_flags(base)}" if isinstance(base, dict)
                              else "compare a load run with a load run (bench -o FILE with the same flags)"))
    names_cur = [level_name(cur, lv) for lv in cur.get("levels") or []]
    names_base = [level_name(base, lv) for lv in base.get("levels") or []]
    if names_cur != names_base:
        raise BenchError(f"levels {', '.join(names_cur) or 'none'} differ from the baseline's "
                         f"{', '.join(names_base) or 'none'}", fix=f"re-run with the baseline's flags: {load_flags(base)}")
    return {name: (_samples(c, name, "this run"), _samples(b, name, "the baseline"))
            for name, c, b in zip(names_cur, cur["levels"], base["levels"])}


def _samples(level: dict[str, Any], name: str, side: str) -> list[float]:
    samples = (level.get("latency") or {}).get("samples")
    if not isinstance(samples, list) or not samples or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in samples):
        raise BenchError(f"{side}: level {name!r} has no valid raw latency samples",
                         fix="pass a file written by `parity bench -o FILE`")
    return [float(x) for x in samples]
