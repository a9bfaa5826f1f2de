"""``parity.watch``: the golden record keeps guarding a model while it serves.

``w = watch(pipeline_or_model, golden="golden/")`` wraps what the server calls:

- ``w(batch)`` (a Pipeline: raw inputs -> preprocess -> model -> postprocess) or
  ``w(*args, **kwargs)`` (a bare model) serves exactly as the pipeline or model does;
  one call in ``sample_every`` is summarised per layer (:mod:`parity.watch.sampling`)
  and compared with the golden record's ranges (:mod:`parity.watch.drift`, a heuristic);
- every ``canary_every`` seconds, in a daemon thread, and on ``w.check()``, the golden
  canary verifies the live pipeline against the golden record like ``parity verify``
  (:mod:`parity.watch.canary`): that verdict is the watch's verdict;
- results go out as Prometheus metrics, JSON log lines (logger ``parity.watch``), an
  ``on_alarm`` callback and the state folder read by ``parity watch-report``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity._text import one_line
from parity.errors import ParityError
from parity.target import Pipeline, model_input
from parity.watch import events
from parity.watch.gate import Gate

if TYPE_CHECKING:
    import torch
    from prometheus_client import CollectorRegistry

FAILING = ("FAIL", "ERROR")
#: drift is judged (logged, alarmed) at most this often on the request path, and on status()
DRIFT_EVAL_SECONDS = 1.0


@dataclass
class WatchStatus:
    """The watch now (``to_json()``: ``parity.watch-status/1``). ``verdict`` is the last
    canary's (PASS, PASS-with-warnings, FAIL, ERROR when it could not run; None before
    the first)."""

    watch: str
    golden: str
    state_dir: str
    open: bool
    verdict: str | None
    reason: str
    probable_cause: dict[str, Any] | None
    last_canary: dict[str, Any] | None
    canaries: dict[str, int]
    requests: int
    sampled: int
    config: dict[str, Any]
    drift: dict[str, Any]
    overhead: dict[str, Any]
    metrics: dict[str, Any]
    hooks: int = 0  # parity hooks on the model now (0 between sampled calls and canaries)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "parity.watch-status/1", "watch": self.watch, "golden": self.golden,
                "state_dir": self.state_dir, "open": self.open, "verdict": self.verdict, "reason": self.reason,
                "probable_cause": self.probable_cause, "last_canary": self.last_canary,
                "canaries": dict(self.canaries), "requests": self.requests, "sampled": self.sampled,
                "config": dict(self.config), "drift": self.drift, "overhead": self.overhead,
                "metrics": self.metrics, "hooks": self.hooks, **self.extra}


@dataclass
class _Config:
    name: str
    golden: Path
    state_dir: Path
    sample_every: int
    canary_every: float | None
    canary_on_start: bool
    window: int
    drift_threshold: float
    drift_alarm: float | None
    on_alarm: Callable[[events.Alarm], Any] | None
    tolerances: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"sample_every": self.sample_every, "canary_every": self.canary_every,
                "canary_on_start": self.canary_on_start, "window": self.window,
                "drift_threshold": self.drift_threshold, "drift_alarm": self.drift_alarm}


def watch(pipeline_or_model: Pipeline | torch.nn.Module, golden: str | os.PathLike[str], sample_every: int = 100,
          canary_every: float | None = 600.0, *, name: str | None = None,
          state_dir: str | os.PathLike[str] | None = None, registry: CollectorRegistry | None = None,
          metrics: bool = True,
          on_alarm: Callable[[events.Alarm], Any] | None = None, canary_on_start: bool = True,
          window: int = 20, drift_threshold: float = 1.0, drift_alarm: float | None = None,
          atol: float | None = None, rtol: float | None = None,
          overrides: Mapping[str, Mapping[str, float]] | None = None) -> Watch:
    """Watch ``pipeline_or_model`` (a :class:`parity.Pipeline` or an ``nn.Module``)
    against the golden record ``golden`` while it serves; see :class:`Watch`.

    ``sample_every``: one call in N is summarised per layer (0: none). ``canary_every``:
    seconds between golden canaries in a daemon thread (None or 0: only ``check()``);
    ``canary_on_start`` runs one at once. ``registry``: the prometheus-client registry
    (None: the global one); ``metrics=False`` serves none. ``on_alarm(Alarm)`` hears of
    failing, erroring and recovered canaries (and of layers whose drift score reaches
    ``drift_alarm``, when given). ``state_dir`` (default ``<parity cache>/watch/<name>``)
    receives the last canary for ``parity watch-report``. ``atol``/``rtol``/``overrides``
    as for ``parity.verify``. Raises RecordError for a missing or unusable golden record.
    """
    from parity.records.format import read_record
    from parity.target import as_pipeline

    pipeline = as_pipeline("the watched object", pipeline_or_model)
    _check_args(sample_every, canary_every, window, drift_threshold)
    rec = read_record(golden)
    label = one_line(name or pipeline.name or type(pipeline.model).__name__)
    config = _Config(label, Path(golden), _state_dir(state_dir, label), int(sample_every),
                     float(canary_every) if canary_every else None, canary_on_start, int(window),
                     float(drift_threshold), drift_alarm, on_alarm,
                     {"atol": atol, "rtol": rtol, "overrides": overrides})
    return Watch(pipeline, isinstance(pipeline_or_model, Pipeline), rec, config, registry, metrics)


def _check_args(sample_every: Any, canary_every: Any, window: Any, threshold: Any) -> None:
    if not isinstance(sample_every, int) or sample_every < 0:
        raise ParityError(f"sample_every={sample_every!r}: must be a whole number >= 0",
                          fix="pass e.g. sample_every=100 (one call in 100), or 0 for none")
    if canary_every is not None and not (isinstance(canary_every, (int, float)) and canary_every >= 0):
        raise ParityError(f"canary_every={canary_every!r}: must be seconds >= 0 or None",
                          fix="pass e.g. canary_every=600, or None to run canaries only on check()")
    if not isinstance(window, int) or window < 1:
        raise ParityError(f"window={window!r}: must be a whole number >= 1", fix="pass e.g. window=20")
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ParityError(f"drift_threshold={threshold!r}: must be > 0", fix="pass e.g. drift_threshold=1.0")


def _state_dir(state_dir: str | os.PathLike[str] | None, name: str) -> Path:
    if state_dir is not None:
        return Path(state_dir)
    from parity._io import cache_root

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "watch"
    return cache_root() / "watch" / safe


class Watch:
    """A model or pipeline under watch. Build it with :func:`watch`.

    ``pipeline`` is the live :class:`parity.Pipeline` (the object passed in, not a copy):
    an application that reloads its tokenizer sets ``w.pipeline.preprocess``, and does
    reloads inside ``with w.exclusive():`` so requests and the canary never see half a
    change. After :meth:`close` calls still serve, unwatched.
    """

    def __init__(self, pipeline: Pipeline, is_pipeline: bool, golden: Any, config: _Config, registry: Any,
                 metrics: bool) -> None:
        from parity.watch import canary

        self.pipeline = pipeline
        self.name, self.golden, self.state_dir = config.name, config.golden, config.state_dir
        self._config, self._golden, self._is_pipeline = config, golden, is_pipeline
        self._inputs = _golden_inputs(golden)
        self._policy = _policy(golden, config.tolerances)
        self._gate = Gate()
        self._count = itertools.count(1)
        self._served = self._sampled = 0
        self._overhead = 0.0
        self._lock = threading.Lock()  # the figures below
        self._canary_lock = threading.Lock()  # one canary at a time
        self._last: dict[str, Any] | None = None
        self._verdict: str | None = None
        self._reason, self._cause, self._canaries = "", None, Counter[str]()
        self._drift_layers: frozenset[str] = frozenset()
        self._drift_alarmed: frozenset[str] = frozenset()
        self._next_eval = 0.0
        self._closed = False
        self._drift, self._why_no_drift = _drift_tracker(golden, pipeline, config)
        self._period = config.sample_every if self._drift is not None else 0  # 0: no call is sampled
        self._metrics_off = "turned off (metrics=False)" if not metrics else _attach(self, registry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warm = canary.warm_up
        events.log(logging.INFO, "start", self.name, golden=str(self.golden), state_dir=str(self.state_dir),
                   config=config.to_json(), drift=self._why_no_drift or "on", metrics=self._metrics_off or "on")
        if config.canary_every or config.canary_on_start:
            self._thread = threading.Thread(target=self._loop, name=f"parity-watch-{self.name}", daemon=True)
            self._thread.start()

    # -- serving ----------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Serve one call: ``w(batch)`` for a Pipeline, ``w(*args, **kwargs)`` for a model."""
        if self._closed:
            return self._serve(args, kwargs)
        gate = self._gate
        gate.holders.append(None)  # Gate.enter(), its lock-free fast path inline
        try:
            if gate.blocked:
                gate.give_way()
            n = self._served = next(self._count)
            if self._period and n % self._period == 0:
                return self._sampled_call(args, kwargs)
            if self._is_pipeline and len(args) == 1 and not kwargs:  # _serve(), inline
                pipeline = self.pipeline
                x = model_input(pipeline, args[0])
                return pipeline.run_postprocess(pipeline.call_model(x), x)
            return self._serve(args, kwargs)
        finally:
            gate.holders.pop()  # Gate.leave()
            if gate.blocked:
                gate.wake()

    def _serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self._is_pipeline:
            return self.pipeline.model(*args, **kwargs)
        if len(args) != 1 or kwargs:
            raise TypeError("a watched Pipeline is called with one batch: w(list_of_raw_inputs)")
        pipeline = self.pipeline
        x = model_input(pipeline, args[0])
        return pipeline.run_postprocess(pipeline.call_model(x), x)

    def _sampled_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from parity.watch.sampling import LayerSampler

        sampler = LayerSampler(self.pipeline.model)
        with sampler:
            out = self._serve(args, kwargs)
        start = time.perf_counter()
        assert self._drift is not None
        self._drift.add_samples(sampler.samples)
        if start >= self._next_eval:
            self._next_eval = start + DRIFT_EVAL_SECONDS
            self._judge_drift()
        with self._lock:
            self._sampled += 1
            self._overhead += sampler.seconds + time.perf_counter() - start
        return out

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off requests and canaries (waiting for running ones) for a reload."""
        with self._gate.exclusive():
            yield

    # -- the golden canary -----------------------------------------------------------------
    def check(self) -> Any:
        """Run the golden canary now and return its ``VerifyResult`` (as ``parity verify``).
        Raises what the canary raised when it could not run (the verdict is then ERROR)."""
        if self._closed:
            raise ParityError(f"watch {self.name} is closed", fix="create a new watch with parity.watch(...)")
        with self._canary_lock:
            return self._canary()

    def _loop(self) -> None:
        every = self._config.canary_every
        if self._config.canary_on_start:
            self._background_canary()
        while every and not self._stop.wait(every):
            self._background_canary()

    def _background_canary(self) -> None:
        with self._canary_lock:
            if self._closed:
                return
            with contextlib.suppress(Exception):  # logged, alarmed and in the status already
                self._canary()

    def _canary(self) -> Any:
        from parity.watch.canary import run_canary

        start, wall = time.perf_counter(), time.time()
        try:
            self._warm(self._golden)
            result = run_canary(self._golden, self._inputs, self.pipeline, self._policy, self._gate,
                                f"live pipeline {self.name} (parity.watch)")
        except Exception as exc:
            self._finish_error(exc, wall, time.perf_counter() - start)
            raise
        result.notes.append(one_line(f"golden canary of watch {self.name}: the golden record's inputs through "
                                     f"the live pipeline, in-process, at {_iso(wall)}"))
        self._finish(result, wall, time.perf_counter() - start)
        return result

    def _finish(self, result: Any, wall: float, seconds: float) -> None:
        from parity.watch.state import write_canary

        doc = result.to_json()
        before, cause = self._verdict, result.probable_cause
        with self._lock:
            self._verdict, self._reason, self._cause = result.verdict, result.reason, cause
            self._last = {"time": _iso(wall), "finished": time.time(), "seconds": seconds, "verdict": result.verdict,
                          "error": None}
            self._canaries[result.verdict] += 1
        write_canary(self.state_dir, doc, self.status().to_json())
        level = logging.ERROR if result.verdict == "FAIL" else logging.INFO
        events.log(level, "canary", self.name, verdict=result.verdict, reason=result.reason, seconds=seconds,
                   probable_cause=_cause_line(cause), first_divergent_stage=result.first_divergent_stage,
                   first_divergent_layer=result.first_divergent_layer, state_dir=str(self.state_dir))
        self._alarm_on_change(before, result.verdict, result.reason, cause, result)

    def _finish_error(self, exc: BaseException, wall: float, seconds: float) -> None:
        from parity.watch.state import write_status

        reason = one_line(f"the canary could not run: {type(exc).__name__}: {exc}")
        before = self._verdict
        with self._lock:
            self._verdict, self._reason, self._cause = "ERROR", reason, None
            self._last = {"time": _iso(wall), "finished": time.time(), "seconds": seconds, "verdict": "ERROR",
                          "error": reason}
            self._canaries["ERROR"] += 1
        with contextlib.suppress(OSError, ParityError):
            write_status(self.state_dir, self.status().to_json())
        events.log(logging.ERROR, "canary", self.name, verdict="ERROR", reason=reason, seconds=seconds)
        self._alarm_on_change(before, "ERROR", reason, None, None)

    def _alarm_on_change(self, before: str | None, verdict: str, reason: str, cause: dict[str, Any] | None,
                         result: Any) -> None:
        """Alarm on a new failure (or a failure with another cause), and on recovery."""
        kind_now = cause.get("kind") if cause else None
        if verdict in FAILING:
            if before in FAILING and before == verdict and kind_now == self._alarmed_cause:
                return
            self._alarmed_cause = kind_now
            kind = "error" if verdict == "ERROR" else "canary"
            events.raise_alarm(self._config.on_alarm, events.Alarm(kind, self.name, verdict, reason, cause,
                                                                   result=result))
        elif before in FAILING:
            self._alarmed_cause = None
            events.raise_alarm(self._config.on_alarm, events.Alarm("resolved", self.name, verdict, reason,
                                                                   result=result))

    _alarmed_cause: str | None = None

    # -- drift --------------------------------------------------------------------------------
    def _judge_drift(self, layers: list[Any] | None = None) -> None:
        """Log when the set of out-of-range layers changes; alarm at ``drift_alarm``.
        Without ``layers``, only the scores are computed, and the reports when needed."""
        drift = self._drift
        assert drift is not None
        scores = {d.layer: d.score for d in layers} if layers is not None else drift.scores()
        out = frozenset(k for k, v in scores.items() if v >= drift.threshold)
        limit = self._config.drift_alarm
        high = frozenset(k for k, v in scores.items() if v >= limit) if limit is not None else frozenset()
        if out == self._drift_layers and not high - self._drift_alarmed:
            self._drift_alarmed = high
            return
        layers = drift.layers() if layers is None else layers
        if out != self._drift_layers:
            self._drift_layers = out
            events.log(logging.WARNING if out else logging.INFO, "drift", self.name,
                       out_of_range=[d.to_json() for d in layers if d.layer in out][:20],
                       note="heuristic: live statistics against the golden ranges, not a verdict")
        if high - self._drift_alarmed:
            events.raise_alarm(self._config.on_alarm, events.Alarm(
                "drift", self.name, self._verdict, f"{len(high)} layer(s) drift score >= {limit}",
                layers=[d.to_json() for d in layers if d.layer in high][:20]))
        self._drift_alarmed = high

    # -- state ----------------------------------------------------------------------------------
    def status(self) -> WatchStatus:
        """The current state: last canary, counts, drift, overhead, metrics."""
        with self._lock:
            last = dict(self._last) if self._last else None
            verdict, reason, cause = self._verdict, self._reason, self._cause
            canaries, served, sampled, overhead = dict(self._canaries), self._served, self._sampled, self._overhead
        if last is not None:
            last["age_seconds"] = time.time() - last.pop("finished")
        return WatchStatus(self.name, str(self.golden), str(self.state_dir), not self._closed, verdict, reason, cause,
                           last, canaries, served, sampled, self._config.to_json(), self._drift_json(),
                           {"sampled_calls": sampled, "seconds_total": overhead,
                            "seconds_mean": overhead / sampled if sampled else None},
                           {"enabled": self._metrics_off is None, "why_not": self._metrics_off},
                           hooks=parity_hooks(self.pipeline.model))

    def _drift_json(self) -> dict[str, Any]:
        if self._drift is None:
            return {"enabled": False, "why_not": self._why_no_drift, "layers": []}
        layers = self._drift.layers()
        self._judge_drift(layers)
        return {"enabled": True, "why_not": None, "threshold": self._drift.threshold, "window": self._drift.window,
                "max": max((d.score for d in layers), default=0.0),
                "out_of_range": [d.to_json() for d in layers if d.score >= self._drift.threshold],
                "layers": [d.to_json() for d in layers],
                "note": "heuristic: live statistics against the golden ranges, not a verdict"}

    def metrics_state(self) -> dict[str, Any]:
        """The figures the Prometheus collector reads at scrape time."""
        with self._lock:
            last, verdict, cause = self._last, self._verdict, self._cause
            canaries, served, sampled, overhead = dict(self._canaries), self._served, self._sampled, self._overhead
        layers = self._drift.layers() if self._drift is not None else []
        return {"watch": self.name, "verdict": verdict or "NONE",
                "cause": cause.get("kind") if verdict in FAILING and cause else None,
                "age": time.time() - last["finished"] if last else math.nan,
                "duration": last["seconds"] if last else math.nan, "canaries": canaries, "requests": served,
                "sampled": sampled, "overhead_seconds": overhead, "drift": [(d.layer, d.score) for d in layers],
                "out_of_range": sum(1 for d in layers if self._drift and d.score >= self._drift.threshold)}

    # -- closing ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the canary thread, wait for running calls, take every parity hook off the
        model and stop serving metrics. Calls made afterwards serve unwatched."""
        if self._closed:
            return
        self._stop.set()
        with self._gate.exclusive():
            self._closed = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        from parity.watch import metrics

        metrics.detach(self)
        events.log(logging.INFO, "close", self.name, requests=self._served, sampled=self._sampled)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<parity.Watch {self.name!r} verdict={self._verdict} {'open' if not self._closed else 'closed'}>"


def parity_hooks(model: Any) -> int:
    """How many forward hooks and pre-hooks parity has on ``model``'s modules now."""
    count = 0
    for module in getattr(model, "modules", lambda: [])():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            count += sum(1 for h in hooks.values() if _is_parity(h))
    return count


def _is_parity(hook: Any) -> bool:
    fn = getattr(hook, "func", hook)  # functools.partial of a bound method
    owner = getattr(fn, "__self__", None)
    return type(owner).__module__.startswith("parity.") if owner is not None else False


def _golden_inputs(golden: Any) -> Any:
    from parity.errors import RecordError
    from parity.records import load_record_inputs

    try:
        return load_record_inputs(golden)
    except RecordError as exc:
        raise RecordError(f"{golden.where()}: the golden record's inputs cannot be replayed ({exc})",
                          fix="record the golden record with text, JSON or tensor inputs") from None


def _policy(golden: Any, tolerances: dict[str, Any]) -> Any:
    from parity.comparison.tolerances import policy_from

    return policy_from(golden.manifest.get("tolerances"), tolerances["atol"], tolerances["rtol"],
                       tolerances["overrides"])


def _drift_tracker(golden: Any, pipeline: Pipeline, config: _Config) -> tuple[Any, str | None]:
    """(DriftTracker, None), or (None, why live statistics are off)."""
    from parity.records.capture import hookable
    from parity.watch.drift import DriftTracker, golden_ranges

    if not config.sample_every:
        return None, "sampling turned off (sample_every=0)"
    why = hookable(pipeline.model)
    if why:
        return None, why
    if golden.capture == "outputs" or not golden.has("layers.json"):
        return None, "the golden record holds no layer statistics (recorded with --capture outputs)"
    ranges = golden_ranges(golden.layers)
    if not ranges:
        return None, "the golden record holds no layer statistics"
    return DriftTracker(ranges, config.window, config.drift_threshold), None


def _attach(watch: Watch, registry: Any) -> str | None:
    from parity.watch import metrics

    why = metrics.attach(watch, registry)
    if why:
        events.log(logging.WARNING, "metrics-disabled", watch.name, reason=why)
    return why


def _cause_line(cause: dict[str, Any] | None) -> dict[str, Any] | None:
    if not cause:
        return None
    return {k: cause.get(k) for k in ("kind", "summary", "subject", "confidence", "fix")}


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
