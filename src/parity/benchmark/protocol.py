"""The timing protocol: warm up until per-call times settle, then measure every stage.

One *call* pushes one fixed batch through the pipeline: preprocess, model, postprocess,
each timed on its own with ``time.perf_counter_ns`` (device work synchronised through
``_cuda``), plus the whole call end to end. Measuring stops only when both minimums are
met: ``min_iters`` calls **and** ``min_time`` seconds (MLPerf's validity rule), so a fast
model gets many samples and a slow one still gets enough.

Raw per-call samples are kept; statistics are computed when the result is serialised.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parity.benchmark import stats
from parity.benchmark._cuda import CudaTimer, cuda_timer_for
from parity.benchmark.machine import MachineWatch
from parity.errors import BenchError
from parity.progress import ProgressEvent, ProgressFn

SCHEMA = "parity.bench/1"
STAGES = ("preprocess", "model", "postprocess")
END_TO_END = "end_to_end"

DEFAULT_MIN_TIME = 2.0
DEFAULT_MIN_ITERS = 20
DEFAULT_MAX_WARMUP = 50
#: `parity record --bench` stores a baseline; shorter so recording stays quick.
RECORD_MIN_TIME = 0.5
RECORD_MIN_ITERS = 10

# Warm-up is settled when the median of the last _SETTLE_WINDOW calls is within
# _SETTLE_TOLERANCE of the median of the window before it.
_SETTLE_WINDOW = 3
_SETTLE_TOLERANCE = 0.05
#: The machine's canary runs after every _CANARY_EVERY-th measured call.
_CANARY_EVERY = 4
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

Clock = Callable[[], int]


@dataclass(frozen=True)
class BenchConfig:
    """What was asked for; a comparison re-measures with the baseline's config."""

    batch_size: int
    threads: int | None = None
    min_time: float = DEFAULT_MIN_TIME
    min_iters: int = DEFAULT_MIN_ITERS
    max_warmup: int = DEFAULT_MAX_WARMUP

    def validate(self) -> None:
        """Raise :class:`BenchError` naming the bad flag."""
        checks = [
            (self.batch_size >= 1, "--batch-size", "use a batch size of 1 or more"),
            (self.threads is None or self.threads >= 1, "--threads", "use 1 or more threads"),
            (self.min_time >= 0 and math.isfinite(self.min_time), "--min-time", "use a duration in seconds >= 0"),
            (self.min_iters >= 1, "--min-iters", "measure at least 1 call"),
            (self.max_warmup >= 1, "max_warmup", "allow at least 1 warm-up call"),
        ]
        for ok, flag, fix in checks:
            if not ok:
                raise BenchError(f"{flag}: invalid value {getattr(self, _FLAG_FIELD[flag])!r}", fix=fix)


_FLAG_FIELD = {
    "--batch-size": "batch_size",
    "--threads": "threads",
    "--min-time": "min_time",
    "--min-iters": "min_iters",
    "max_warmup": "max_warmup",
}


@dataclass
class Measurement:
    """Raw outcome of :func:`measure`: seconds per call and stage."""

    samples: dict[str, list[float]]
    cold_first_call: dict[str, float]
    warmup_calls: int
    settled: bool
    gpu: dict[str, Any] | None = None
    machine: dict[str, Any] | None = None  # parity.benchmark.machine: was the machine quiet?


@dataclass
class BenchResult:
    """One benchmark: config, raw samples and the environment that produced them."""

    target: str | None
    model: dict[str, Any]
    config: BenchConfig
    items: int
    measurement: Measurement
    threads: dict[str, Any]
    load_seconds: float | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    unit: str = "items/s"
    peak_rss_bytes: int | None = None
    env: dict[str, Any] | None = None
    created: str = ""

    @property
    def warnings(self) -> list[str]:
        """What makes these figures less trustworthy (noisy stages, unsettled warm-up)."""
        return _warnings(self.measurement)

    def to_json(self) -> dict[str, Any]:
        m = self.measurement
        e2e = statistics.median(m.samples[END_TO_END])
        return {
            "schema": SCHEMA,
            "created": self.created,
            "target": self.target,
            "model": self.model,
            "batch_size": self.config.batch_size,
            "items": self.items,
            "inputs": self.inputs,
            "threads": self.threads,
            "config": asdict(self.config),
            "load_seconds": self.load_seconds,
            "cold_first_call": m.cold_first_call,
            "warmup": {"calls": m.warmup_calls, "settled": m.settled},
            "stages": {name: {"samples": s, **stats.summarize(s)} for name, s in m.samples.items()},
            "throughput": {"items_per_s": self.items / e2e if e2e > 0 else None, "unit": self.unit,
                           "basis": "items per median end-to-end call"},
            "peak_rss_bytes": self.peak_rss_bytes,
            "gpu": m.gpu,
            "machine": m.machine,
            "warnings": self.warnings,
            "env": self.env,
        }


def _warnings(m: Measurement) -> list[str]:
    noisy = []
    machine = [f"the machine was not quiet during the run: {'; '.join(m.machine['reasons'])}"
               ] if m.machine and m.machine.get("disturbed") else []
    for name, s in m.samples.items():
        med = statistics.median(s)
        if med > 0 and stats.iqr(s) / med > stats.NOISY_IQR_RATIO:
            noisy.append(f"{name} {stats.iqr(s) / med:.0%}")
    out = []
    if noisy:
        out.append(f"noisy timings (IQR/median over {stats.NOISY_IQR_RATIO:.0%}): {', '.join(noisy)}; "
                   "small differences are not meaningful")
    if not m.settled:
        out.append(f"warm-up did not settle within {m.warmup_calls} calls; early samples may be slower")
    return out + machine


# --------------------------------------------------------------------------- public API


def bench(
    target: Any,
    inputs: Any = None,
    *,
    batch_size: int | None = None,
    threads: int | None = None,
    min_time: float = DEFAULT_MIN_TIME,
    min_iters: int = DEFAULT_MIN_ITERS,
    max_warmup: int = DEFAULT_MAX_WARMUP,
    progress: ProgressFn | None = None,
) -> BenchResult:
    """Benchmark ``target`` stage by stage and return the raw samples with their environment.

    ``target``: a TARGET spec (str/Path), a ``LoadedTarget`` or a ``Pipeline``.
    ``inputs``: an ``--inputs`` file path, a list of raw inputs, or None for the
    pipeline's ``example_inputs``. Every call uses the same batch of ``batch_size``
    items (default: the pipeline's), cycling through the inputs when there are fewer.
    ``threads``: torch intra-op and BLAS thread count for the run (None: leave as is).
    ``max_warmup``: most warm-up calls, the cold first call included; warm-up also
    stops after ``min_time`` seconds. ``progress`` gets an event after every call.
    """
    pipeline, spec, kind, load_seconds = _resolve_target(target)
    if batch_size is None:
        batch_size = int(getattr(pipeline, "batch_size", 8) or 8)
    config = BenchConfig(batch_size, threads, float(min_time), int(min_iters), int(max_warmup))
    config.validate()
    items, inputs_info = _resolve_inputs(inputs, pipeline)
    batch = _fixed_batch(items, config.batch_size)
    with _thread_limits(config.threads):
        measurement = measure(pipeline, batch, config, cuda=cuda_timer_for(pipeline.model), progress=progress)
        thread_state = _thread_state(config.threads)
        env = _env_snapshot()
    return BenchResult(
        target=spec, model=_model_identity(pipeline, kind), config=config, items=len(batch),
        measurement=measurement, threads=thread_state, load_seconds=load_seconds, inputs=inputs_info,
        unit="FPS" if _looks_like_images(items) else "items/s",
        peak_rss_bytes=_peak_rss_bytes(), env=env, created=_now(),
    )


def bench_for_record(pipeline: Any, inputs: Any, batch_size: int,
                     progress: ProgressFn | None = None) -> dict[str, Any]:
    """A short ``parity.bench/1`` baseline for ``parity record --bench`` (JSON dict)."""
    result = bench(pipeline, inputs, batch_size=batch_size, min_time=RECORD_MIN_TIME, min_iters=RECORD_MIN_ITERS,
                   progress=progress)
    return result.to_json()


def measure(
    pipeline: Any,
    batch: Any,
    config: BenchConfig,
    *,
    clock: Clock = time.perf_counter_ns,
    cuda: CudaTimer | None = None,
    progress: ProgressFn | None = None,
) -> Measurement:
    """Run the protocol on one batch: cold call, bounded warm-up, then measured calls.

    ``clock`` returns nanoseconds (injected by tests); ``cuda`` synchronises and times
    device work when the model is on a GPU. While measuring, a :class:`MachineWatch`
    notes the machine's load and times its canary every few calls (outside the timings).
    """
    import torch

    stages, first_input = _stage_plan(pipeline, batch)

    def call() -> dict[str, float]:
        return _timed_call(stages, first_input, clock, cuda)

    if cuda is not None:
        cuda.synchronize()
        cuda.reset_peak_memory()
    cold, warmup_calls, settled = _warm_up(call, config.max_warmup, config.min_time, clock)
    watch = MachineWatch(torch.get_num_threads())
    samples = _measured_calls(call, config.min_iters, config.min_time, clock,
                              _between_calls(watch, config, progress))
    gpu = None
    if cuda is not None:
        gpu = {"device": cuda.device_name(), "peak_allocated_bytes": cuda.peak_allocated_bytes(),
               "model_timing": "cuda_events"}
    return Measurement(samples, cold, warmup_calls, settled, gpu, watch.finish())


def _between_calls(watch: MachineWatch, config: BenchConfig, progress: ProgressFn | None) -> Callable[[int], None]:
    """After measured call ``n``: the canary every few calls, and progress (with the
    number of calls the run will likely make, from the time per call so far)."""
    start = time.perf_counter()

    def after(n: int) -> None:
        if n % _CANARY_EVERY == 1:
            watch.canary.run()
        if progress is not None:
            per_call = (time.perf_counter() - start) / n
            expected = max(config.min_iters, n, math.ceil(config.min_time / per_call) if per_call > 0 else n)
            progress(ProgressEvent("bench", n, expected, "calls"))

    return after


# --------------------------------------------------------------------------- protocol steps


def _stage_plan(pipeline: Any, batch: list[Any]) -> tuple[list[tuple[str, Callable[..., Any]]], Any]:
    """(stage name, function) in call order, and what the first stage receives.

    Tensor inputs and pipelines without a preprocess are collated once, outside the
    timing (the model is fed a ready batch), so there is no preprocess stage: absent
    stages are not timed at all.
    """
    from parity.target import TensorInputs, collate
    from parity.target.pipeline import postprocess_caller

    out: list[tuple[str, Callable[..., Any]]] = []
    if isinstance(batch, TensorInputs) or getattr(pipeline, "preprocess", None) is None:
        first_input = collate(batch)
    else:
        first_input = batch
        out.append(("preprocess", pipeline.preprocess))
    out.append(("model", pipeline.call_model))
    if getattr(pipeline, "postprocess", None) is not None:
        out.append(("postprocess", postprocess_caller(pipeline.postprocess)))
    return out, first_input


def _timed_call(stages: Sequence[tuple[str, Callable[..., Any]]], batch: Any, clock: Clock, cuda: CudaTimer | None) -> dict[str, float]:
    """Seconds per stage and end to end for one call through the pipeline."""
    import torch

    times: dict[str, float] = {}
    x = model_in = batch
    with torch.no_grad():
        if cuda is not None:
            cuda.synchronize()  # nothing queued earlier may leak into this call's times
        t_call = clock()
        for name, fn in stages:
            t0 = clock()
            if name == "model":
                model_in = x
            if cuda is not None and name == "model":
                event = cuda.start()
                x = _run_stage(name, fn, x)
                times[name] = cuda.elapsed_since(event)
            else:
                x = _run_stage(name, fn, x, model_in)
                if cuda is not None:
                    cuda.synchronize()  # a stage may queue device work (e.g. a .to("cuda"))
                times[name] = (clock() - t0) / 1e9
        times[END_TO_END] = (clock() - t_call) / 1e9
    return times


def _run_stage(name: str, fn: Callable[..., Any], x: Any, model_in: Any = None) -> Any:
    try:
        return fn(x, model_in) if name == "postprocess" else fn(x)
    except Exception as exc:  # the user's code failed: say which stage, keep the cause
        raise BenchError(f"the pipeline's {name} stage failed: {type(exc).__name__}: {exc}",
                         fix=f"check that the inputs suit the {name} stage of the target") from exc


def _warm_up(call: Callable[[], dict[str, float]], max_calls: int, max_seconds: float,
             clock: Clock) -> tuple[dict[str, float], int, bool]:
    """Cold first call, then calls until end-to-end times settle (bounded).

    Returns (cold call's times, warm-up calls made including the cold one, settled).
    """
    t0 = clock()
    cold = call()
    history: list[float] = []
    calls = 1
    while calls < max_calls:
        history.append(call()[END_TO_END])
        calls += 1
        if _settled(history):
            return cold, calls, True
        if (clock() - t0) / 1e9 >= max_seconds:
            break
    return cold, calls, _settled(history)


def _settled(history: Sequence[float]) -> bool:
    w = _SETTLE_WINDOW
    if len(history) < 2 * w:
        return False
    last, previous = statistics.median(history[-w:]), statistics.median(history[-2 * w:-w])
    return previous > 0 and abs(last - previous) / previous <= _SETTLE_TOLERANCE


def _measured_calls(call: Callable[[], dict[str, float]], min_iters: int, min_time: float,
                    clock: Clock, between: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """Calls until at least ``min_iters`` calls *and* ``min_time`` seconds; raw samples.
    ``between(n)`` runs after the n-th call, outside its timing."""
    samples: dict[str, list[float]] = {}
    t0 = clock()
    n = 0
    while n < min_iters or (clock() - t0) / 1e9 < min_time:
        for name, seconds in call().items():
            samples.setdefault(name, []).append(seconds)
        n += 1
        if between is not None:
            between(n)
    return samples


# --------------------------------------------------------------------------- target, inputs


def _resolve_target(target: Any) -> tuple[Any, str | None, str, float | None]:
    """(pipeline, spec, kind, load seconds) from a spec, a LoadedTarget or a Pipeline."""
    if isinstance(target, (str, Path)):
        from parity.target import load_target

        target = load_target(str(target))
    if hasattr(target, "pipeline"):  # a LoadedTarget
        return target.pipeline, str(target.spec), str(target.kind), target.load_seconds
    if hasattr(target, "call_model"):
        return target, getattr(target, "name", None), "pipeline", None
    raise BenchError(f"cannot benchmark a {type(target).__name__}",
                     fix="pass a TARGET spec, a parity.Pipeline or a LoadedTarget")


def _resolve_inputs(inputs: Any, pipeline: Any) -> tuple[list[Any], dict[str, Any]]:
    """The inputs to draw the batch from, and where they came from (for the JSON)."""
    from parity.target import load_inputs

    if inputs is None or isinstance(inputs, (str, Path)):
        items, source = load_inputs(inputs, pipeline), str(inputs) if inputs is not None else "example_inputs"
    else:
        items, source = inputs, "given"
    if not isinstance(items, list):
        items = list(items)
    if not items:
        raise BenchError(f"{source}: no inputs to benchmark", fix="pass at least one input")
    return items, {"source": source, "count": len(items)}


def _fixed_batch(items: list[Any], batch_size: int) -> list[Any]:
    """The one batch every call uses: ``batch_size`` items, cycling when there are fewer.

    Keeps the list's type, so tensor rows (``TensorInputs``) stay tensor rows.
    """
    return type(items)(itertools.islice(itertools.cycle(items), batch_size))


def _looks_like_images(items: list[Any]) -> bool:
    """True when the raw inputs are images: image files, PIL images, CxHxW / HxWxC rows."""
    first = items[0]
    if isinstance(first, (str, Path)) and str(first).lower().endswith(_IMAGE_SUFFIXES):
        return True
    if type(first).__module__.startswith("PIL."):
        return True
    return hasattr(first, "shape") and len(first.shape) == 3


# --------------------------------------------------------------------------- environment


@contextlib.contextmanager
def _thread_limits(threads: int | None) -> Iterator[None]:
    """Set torch intra-op and BLAS/OpenMP threads for the block, then restore them."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def _thread_state(requested: int | None) -> dict[str, Any]:
    """Thread counts in force during the run: torch's and each BLAS/OpenMP pool's."""
    import torch
    from threadpoolctl import threadpool_info

    pools = [{"user_api": p.get("user_api"), "internal_api": p.get("internal_api"),
              "num_threads": p.get("num_threads"), "version": p.get("version")} for p in threadpool_info()]
    return {"requested": requested, "torch": torch.get_num_threads(),
            "torch_interop": torch.get_num_interop_threads(), "pools": pools}


def _env_snapshot() -> dict[str, Any]:
    """The full environment snapshot, runtime state included (taken under the run's threads)."""
    from parity.env import snapshot

    snap: dict[str, Any] = snapshot(runtime=True)
    return snap


def _model_identity(pipeline: Any, kind: str) -> dict[str, Any]:
    """What makes two results comparable: same model class, size and name."""
    model = pipeline.model
    params = None
    if callable(getattr(model, "parameters", None)):
        try:
            params = sum(int(p.numel()) for p in model.parameters())
        except TypeError:
            params = None
    cls = type(model)
    return {"name": getattr(pipeline, "name", None), "class": f"{cls.__module__}.{cls.__qualname__}",
            "parameters": params, "kind": kind}


def _peak_rss_bytes() -> int | None:
    """Peak resident memory of this process so far (includes model load), or None."""
    hwm = _vm_hwm_bytes()
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


def _vm_hwm_bytes() -> int | None:
    # Linux: VmHWM is this process's own peak. ru_maxrss survives exec, so a bench run
    # in a child of a large process (bisect trials, export --bench) would report the
    # parent's peak instead of its own.
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
