"""Several bisect trials at once: local threads, or Ray tasks on a cluster's nodes.

The search itself stays sequential (:func:`parity.bisection.ddmin.minimize` and
``first_bad`` are untouched): :class:`Prefetcher` hands it the verdicts one by one, in
the order it asks for them, while up to K trials it may ask for next
(:func:`parity.bisection.ddmin.speculate`) already run. So the culprit and the list of
trials are those of the sequential search; speculative trials it never asks for are
counted, not listed.

A trial is a picklable :class:`TrialJob` (what to build, everything precomputed on the
driver) run by :func:`run_trial` where it lands: on a Ray node, the trial environment
is built there, in that node's cache folder, and judged there. Ray is imported only
when ``ray`` is asked for.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import socket
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._text import one_line
from parity.bisection.ddmin import Search, Verdict, speculate
from parity.bisection.oracle import Oracle, OracleRun, binary_mismatch, decided, majority
from parity.bisection.trials import (
    IndexOptions,
    InstallError,
    TrialBuilder,
    TrialEnv,
    find_installer,
)
from parity.errors import BisectError

_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class BuildSpec:
    """What every trial of one bisect shares: the base interpreter and its versions of the
    changed names, index options, cache folder, installer, oracle and its run policy."""

    python: str
    base: Mapping[str, str | None]
    index: IndexOptions
    cache_dir: str
    installer: str
    parity_on_path: bool
    oracle: Oracle
    runs: int
    timeout: float | None


@dataclass(frozen=True)
class TrialJob:
    """One trial: the wanted versions, the requirement line of each, the full-venv lock."""

    wanted: Mapping[str, str | None]
    requirements: Mapping[str, str]
    venv_requirements: Sequence[str]


@dataclass
class TrialOutcome:
    """How a trial went, as the sequential search's ``Trial`` records it, plus where."""

    verdict: Verdict
    mode: str = "none"
    why_venv: str | None = None
    cached: bool = False
    build_seconds: float = 0.0
    seconds: float = 0.0
    runs: list[OracleRun] = field(default_factory=list)
    note: str | None = None
    reproduce: str | None = None
    node: str | None = None


def run_trial(spec: BuildSpec, job: TrialJob) -> TrialOutcome:
    """Build ``job``'s environment here and judge it, as the sequential search does
    (majority of ``runs``, a full venv when an overlay shows a binary mismatch)."""
    from parity.bisection.selfwheel import parity_wheel

    start = time.perf_counter()
    outcome = TrialOutcome(Verdict.UNJUDGED, node=_where())
    python, cache = Path(spec.python), Path(spec.cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        builder = TrialBuilder(python, spec.base, spec.index, cache, find_installer(python, spec.installer),
                               lambda wanted: list(job.venv_requirements), lambda n, v: job.requirements[n],
                               parity=parity_wheel(cache), parity_on_path=spec.parity_on_path)
        env = builder.build(job.wanted)
        _judge(spec, outcome, env)
        mismatch = binary_mismatch(outcome.runs) if env.mode == "overlay" else None
        if mismatch:
            env = builder.build(job.wanted, force_venv=f"overlay hit a binary incompatibility: {mismatch}")
            _judge(spec, outcome, env)
    except (InstallError, BisectError, OSError) as exc:
        outcome.verdict, outcome.note = Verdict.SKIP, f"could not build: {one_line(str(exc))[:400]}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _where() -> str:
    """This host, and the Ray node id when a Ray worker runs the trial."""
    import sys

    host = socket.gethostname()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return f"{host} (ray node {ray.get_runtime_context().get_node_id()[:12]})"
    return host


def _judge(spec: BuildSpec, outcome: TrialOutcome, env: TrialEnv) -> None:
    outcome.mode, outcome.why_venv, outcome.cached = env.mode, env.why, env.cached
    outcome.build_seconds += env.build_seconds
    outcome.runs = []
    for _ in range(spec.runs):
        outcome.runs.append(spec.oracle.run(env, spec.timeout))
        if decided(outcome.runs, spec.runs):
            break
    outcome.verdict = majority(outcome.runs, spec.runs)
    outcome.reproduce = spec.oracle.reproduce(env)


# -- where trials run ----------------------------------------------------------------------

Submit = Callable[[BuildSpec, TrialJob], "cf.Future[TrialOutcome]"]


@contextlib.contextmanager
def local_pool(k: int) -> Iterator[tuple[Submit, str]]:
    """K threads on this machine (each trial is subprocesses: the GIL is not the limit).

    On exit, trials not started are dropped and the ones running are waited for (a thread
    cannot stop its subprocess), so nothing writes into the trial cache afterwards."""
    pool = cf.ThreadPoolExecutor(max_workers=k, thread_name_prefix="parity-trial")
    try:
        yield (lambda spec, job: pool.submit(run_trial, spec, job)), "threads"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def ray_pool(address: str | None) -> Iterator[tuple[Submit, str]]:
    """Ray tasks (one CPU each) on the cluster at ``address`` (None: a local one). On exit,
    speculative tasks still running are cancelled (a local cluster is stopped)."""
    try:
        import ray
    except ImportError:
        raise BisectError("--ray: Ray is not installed", fix="pip install 'parity[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if address:
            _probe(address)
        try:
            ray.init(address=address or None, log_to_driver=False, include_dashboard=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BisectError(f"--ray {address or ''}: could not use the Ray cluster ({one_line(str(exc))[:300]})",
                              fix="start one with `ray start --head`, pass its address, or give --ray alone "
                                  "for a local cluster") from None
    task = ray.remote(run_trial).options(num_cpus=1, max_retries=0)
    refs: list[Any] = []

    def submit(spec: BuildSpec, job: TrialJob) -> cf.Future[TrialOutcome]:
        refs.append(task.remote(spec, job))
        return refs[-1].future()  # type: ignore[no-any-return]

    try:
        yield submit, "ray"
    finally:
        unfinished = ray.wait(refs, num_returns=len(refs), timeout=0)[1] if refs else []
        for ref in unfinished:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _probe(address: str) -> None:
    """Fail at once where nothing listens (``ray.init`` would wait a long time)."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise BisectError(f"--ray {address}: no Ray cluster there ({exc.strerror or exc})",
                          fix="check the address (`ray status` on the head node prints it)") from None


# -- the prefetcher ------------------------------------------------------------------------


class Prefetcher:
    """Runs ``search`` with up to ``k`` trials in flight; verdicts reach it in its order.

    ``job_for(key)``: the trial of a search key; ``consume(key, outcome)``: called once
    per key the search actually asks for, in the search's order (it records the trial
    and returns its verdict).
    """

    def __init__(self, k: int, submit: Submit, spec: BuildSpec, job_for: Callable[[Any], TrialJob],
                 consume: Callable[[Any, TrialOutcome], Verdict]) -> None:
        self.k, self.submit, self.spec, self.job_for, self.consume = k, submit, spec, job_for, consume
        self.running: dict[Hashable, cf.Future[TrialOutcome]] = {}
        self.done: dict[Hashable, TrialOutcome] = {}
        self.used: set[Hashable] = set()

    def run(self, search: Search[Any, Any]) -> Any:
        def test(key: Hashable) -> Verdict:
            while key not in self.done:
                if key not in self.running:
                    self._start(key)
                self._top_up(search)
                self._wait()
            self.used.add(key)
            return self.consume(key, self.done[key])

        return search(test)

    @property
    def unused(self) -> int:
        """Trials run (or running) that the search never asked for."""
        return len((set(self.done) | set(self.running)) - self.used)

    def _start(self, key: Hashable) -> None:
        self.running[key] = self.submit(self.spec, self.job_for(key))

    def _top_up(self, search: Search[Any, Any]) -> None:
        free = self.k - len(self.running)
        if free <= 0:
            return
        known = {key: outcome.verdict for key, outcome in self.done.items()}
        for key in speculate(search, known, self.running, free):
            self._start(key)

    def _wait(self) -> None:
        finished, _ = cf.wait(list(self.running.values()), return_when=cf.FIRST_COMPLETED)
        for key, future in list(self.running.items()):
            if future in finished:
                del self.running[key]
                self.done[key] = _result(future)


def _result(future: cf.Future[TrialOutcome]) -> TrialOutcome:
    """A trial's outcome; a task that died (node lost, worker killed) could not judge, an
    exception raised by :func:`run_trial` on the node is raised here (a bug: exit 3)."""
    try:
        return future.result()
    except (InstallError, BisectError) as exc:
        return TrialOutcome(Verdict.SKIP, note=f"could not build: {one_line(str(exc))[:400]}")
    except Exception as exc:  # Ray's errors (RayTaskError, WorkerCrashedError...) vary by version
        if type(exc).__module__.split(".")[0] != "ray":
            raise
        cause = getattr(exc, "cause", None)  # RayTaskError: run_trial itself raised, a bug in parity
        if isinstance(cause, Exception):
            raise cause from None
        first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        return TrialOutcome(Verdict.UNJUDGED, note=f"the trial's task failed: {one_line(first[0])[:300]}")
