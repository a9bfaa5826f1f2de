"""Was the machine quiet while a benchmark ran? Load, steal, frequency, and a canary.

A :class:`MachineWatch` reads the kernel's counters when measuring starts and when it
ends (Linux: ``/proc/stat``, ``/proc/loadavg``, ``/sys/devices/system/cpu``; elsewhere
the fields are None) and times a *canary*, a fixed float32 matrix multiply run with the
benchmark's own threads between measured calls. From them:

- ``idle_cores``: CPU time nobody used during the run, in cores. Under half a core
  means the benchmark competed with other work for the processors;
- ``steal_fraction``: time the hypervisor gave the CPUs to other guests;
- ``run_queue_wait``: the fraction of the run's wall time the measuring thread spent
  ready but waiting for a CPU (``/proc/thread-self/schedstat``). A call that waited
  that long took ``1 / (1 - wait)`` times its time on a free CPU: the run's *starvation*;
- ``cpu_demand``: the fraction of wall time that thread ran or waited to run. A pipeline
  that mostly sleeps or waits for I/O (demand near 0) is barely slowed by a busy CPU,
  so the machine's drift is scaled by the demand (1: all of it);
- ``load_avg``: the 1-minute load average at the start, against the machine's CPUs;
- frequency changes of the benchmark's CPUs and thermal-throttle events;
- ``canary.p50``: the canary's median time. Two runs on the same machine in the same
  state time it alike; the ratio of two runs' canaries is how much the machine's own
  speed drifted between them, whatever the cause (load, throttling, other hardware).
  The matrix multiply uses the run's threads, so it suffers what the model suffers from
  other work (a multi-threaded op waits for its slowest thread); ``canary.p50_one_thread``
  times a plain Python loop, comparable between runs with different thread counts.

``disturbed`` is true when any signal says the timings may be inflated by something
other than the code under test; ``reasons`` says which, in words.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: An idle capacity under this many cores means the run shared the CPUs.
MIN_IDLE_CORES = 0.5
#: Steal above this fraction of CPU time marks the run.
MAX_STEAL = 0.02
#: A CPU whose frequency moved by more than this ratio during the run marks it.
MAX_FREQ_CHANGE = 1.15
#: A measuring thread that waited for a CPU more than this fraction of the run marks it.
MAX_RUN_QUEUE_WAIT = 0.05
#: The canary's matrix size: ~0.1 ms on one modern core; the loop's length, ~0.2 ms.
CANARY_SIZE = 192
CANARY_LOOP = 5000
_CPU_DIR = Path("/sys/devices/system/cpu")


def usable_cores() -> int:
    """CPUs this process may run on (affinity), capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError, IndexError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = max(1, min(cores, int(-(-int(quota) // int(period)))))
    return cores


def _proc_stat() -> dict[str, int] | None:
    """Jiffies summed over every CPU (``cpu`` line) and the number of CPUs."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    fields = lines[0].split()
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return {"idle": idle + iowait, "steal": steal, "cpus": cpus,
            "total": user + nice + system + idle + iowait + irq + softirq + steal}


def _thread_sched_ns() -> tuple[int, int] | None:
    """(nanoseconds on a CPU, nanoseconds runnable but waiting for one) of this thread."""
    try:
        run, wait = Path("/proc/thread-self/schedstat").read_text().split()[:2]
        return int(run), int(wait)
    except (OSError, ValueError):
        return None


def _load_avg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return []


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _frequencies() -> dict[int, int]:
    """Current kHz of the CPUs this process may use, where cpufreq exposes them."""
    out = {}
    for cpu in _cpus():
        khz = _read_int(_CPU_DIR / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq")
        if khz:
            out[cpu] = khz
    return out


def _throttle_count() -> int | None:
    counts = [_read_int(_CPU_DIR / f"cpu{cpu}" / "thermal_throttle" / "core_throttle_count") for cpu in _cpus()]
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


class Canary:
    """A fixed matrix multiply timed with the benchmark's threads (see the module doc)."""

    def __init__(self) -> None:
        import torch

        generator = torch.Generator().manual_seed(0)
        self.a = torch.randn(CANARY_SIZE, CANARY_SIZE, generator=generator)
        self.b = torch.randn(CANARY_SIZE, CANARY_SIZE, generator=generator)
        self.samples: list[float] = []
        self.one_thread: list[float] = []

    def run(self) -> None:
        t0 = time.perf_counter()
        self.a @ self.b
        t1 = time.perf_counter()
        total = 0
        for i in range(CANARY_LOOP):
            total += i
        t2 = time.perf_counter()
        self.samples.append(t1 - t0)
        self.one_thread.append(t2 - t1)


class MachineWatch:
    """Counters at the start of measuring; :meth:`finish` turns them into the run's state."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.canary = Canary()
        self.canary.run()  # the first call pays for allocations: not a sample
        self.canary.samples.clear()
        self.canary.one_thread.clear()
        self._start_wall = time.perf_counter()
        self._start_own = _own_cpu_seconds()
        self._start_stat = _proc_stat()
        self._start_freq = _frequencies()
        self._start_throttle = _throttle_count()
        self._load_start = _load_avg()
        self._start_sched = _thread_sched_ns()

    def finish(self) -> dict[str, Any]:
        """The run's machine state (JSON): the signals, ``disturbed`` and ``reasons``."""
        wall = max(time.perf_counter() - self._start_wall, 1e-9)
        end_stat, end_freq, throttle = _proc_stat(), _frequencies(), _throttle_count()
        state: dict[str, Any] = {
            "usable_cores": usable_cores(), "threads": self.threads, "seconds": wall,
            "load_avg": {"start": self._load_start, "end": _load_avg()},
            "own_cores": (_own_cpu_seconds() - self._start_own) / wall,
            "cpus": None, "idle_cores": None, "steal_fraction": None,
            "freq_khz": {"start": self._start_freq, "end": end_freq} if end_freq else None,
            "throttle_events": (throttle - self._start_throttle)
            if throttle is not None and self._start_throttle is not None else None,
            "canary": _canary_summary(self.canary.samples, self.canary.one_thread),
            **_sched_fractions(self._start_sched, _thread_sched_ns(), wall),
        }
        if self._start_stat and end_stat and end_stat["total"] > self._start_stat["total"]:
            tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
            delta = {k: end_stat[k] - self._start_stat[k] for k in ("idle", "steal", "total")}
            state.update(cpus=end_stat["cpus"], idle_cores=delta["idle"] / tick / wall,
                         steal_fraction=delta["steal"] / delta["total"])
        state["reasons"] = disturbance(state)
        state["disturbed"] = bool(state["reasons"])
        return state


def _sched_fractions(start: tuple[int, int] | None, end: tuple[int, int] | None,
                     wall: float) -> dict[str, float | None]:
    if start is None or end is None:
        return {"run_queue_wait": None, "cpu_demand": None}
    run, wait = (end[0] - start[0]) / 1e9 / wall, (end[1] - start[1]) / 1e9 / wall
    return {"run_queue_wait": min(0.99, max(0.0, wait)), "cpu_demand": min(1.0, max(0.0, run + wait))}


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _canary_summary(samples: list[float], one_thread: list[float]) -> dict[str, Any] | None:
    if not samples:
        return None
    return {"p50": statistics.median(samples), "p50_one_thread": statistics.median(one_thread),
            "n": len(samples), "size": CANARY_SIZE, "loop": CANARY_LOOP}


def disturbance(state: dict[str, Any]) -> list[str]:
    """What in one run's machine state may have inflated its timings (empty: quiet)."""
    reasons = []
    cpus = state.get("cpus") or state.get("usable_cores") or 1
    idle = state.get("idle_cores")
    if isinstance(idle, (int, float)) and idle < MIN_IDLE_CORES:
        others = max(0.0, cpus - idle - (state.get("own_cores") or 0.0))
        reasons.append(f"the CPUs were busy: {idle:.1f} of {cpus} idle on average, other processes "
                       f"used {others:.1f} cores")
    load = (state.get("load_avg") or {}).get("start")
    if isinstance(load, (int, float)) and load > cpus:
        reasons.append(f"load average {load:.1f} on {cpus} CPUs")
    wait = state.get("run_queue_wait")
    if isinstance(wait, (int, float)) and wait > MAX_RUN_QUEUE_WAIT:
        reasons.append(f"the benchmark waited for a CPU {wait:.0%} of the time")
    steal = state.get("steal_fraction")
    if isinstance(steal, (int, float)) and steal > MAX_STEAL:
        reasons.append(f"the hypervisor took {steal:.0%} of CPU time (steal)")
    reasons.extend(_frequency_reasons(state))
    return reasons


def _frequency_reasons(state: dict[str, Any]) -> list[str]:
    out = []
    freq = state.get("freq_khz") or {}
    start, end = freq.get("start") or {}, freq.get("end") or {}
    changes = [max(start[c], end[c]) / min(start[c], end[c]) for c in start if c in end and min(start[c], end[c]) > 0]
    if changes and max(changes) > MAX_FREQ_CHANGE:
        out.append(f"CPU frequency changed by up to {max(changes) - 1:.0%} during the run")
    if (state.get("throttle_events") or 0) > 0:
        out.append(f"{state['throttle_events']} thermal throttling events")
    return out


#: How much faster or slower the canary may run between two runs of a quiet machine.
MAX_CANARY_DRIFT = 1.15
#: Under disturbance, timings may be inflated by more than the canary shows (the
#: canary is small; a model touches more memory): the drift is widened by this factor.
LOAD_SAFETY = 1.25


@dataclass(frozen=True)
class Drift:
    """How far the machine itself may have moved two runs' timings apart.

    ``slow``: the factor by which the current run's times may be inflated by its machine
    (1.0: quiet); ``fast``: the same for the baseline's; ``canary_ratio``: current /
    baseline canary median (None when a run has none, e.g. an older baseline).
    """

    slow: float
    fast: float
    canary_ratio: float | None
    reasons: list[str]

    @property
    def disturbed(self) -> bool:
        return self.slow > 1.0 or self.fast > 1.0

    def to_json(self) -> dict[str, Any]:
        return {"disturbed": self.disturbed, "slow_factor": self.slow, "fast_factor": self.fast,
                "canary_ratio": self.canary_ratio, "reasons": list(self.reasons)}


def machine_drift(current: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None) -> Drift:
    """The :class:`Drift` between two runs' machine states (``parity.bench/1`` ``machine``)."""
    cur, base = current or {}, baseline or {}
    reasons = [f"this run: {r}" for r in cur.get("reasons") or []]
    reasons += [f"baseline: {r}" for r in base.get("reasons") or []]
    ratio = _canary_ratio(cur, base)
    cur_disturbed, base_disturbed = bool(cur.get("disturbed")), bool(base.get("disturbed"))
    if ratio is not None and ratio > MAX_CANARY_DRIFT:
        cur_disturbed = True
        reasons.append(f"a fixed matrix multiply ran {ratio:.2f}x slower in this run than in the baseline's")
    if ratio is not None and ratio < 1 / MAX_CANARY_DRIFT:
        base_disturbed = True
        reasons.append(f"a fixed matrix multiply ran {1 / ratio:.2f}x slower in the baseline's run than in this one")
    starved = _starvation(cur) / _starvation(base) if base else _starvation(cur)
    slow = LOAD_SAFETY * max(1.0, ratio or 1.0, _contention(cur), starved) if cur_disturbed else 1.0
    fast = LOAD_SAFETY * max(1.0, 1 / ratio if ratio else 1.0, _contention(base), 1 / starved) if base_disturbed else 1.0
    return Drift(_scaled(slow, cur), _scaled(fast, base), ratio, reasons)


def _scaled(drift: float, state: Mapping[str, Any]) -> float:
    """``drift`` for the share of the run that used (or wanted) a CPU: a run that slept
    90% of its time can be slowed by a busy machine on the other 10% only."""
    demand = state.get("cpu_demand")
    if not isinstance(demand, (int, float)):
        return drift
    return 1.0 + (drift - 1.0) * min(1.0, max(0.0, float(demand)))


def _starvation(state: Mapping[str, Any]) -> float:
    """How many times longer the run's calls took than on a free CPU (from the run-queue wait)."""
    wait = state.get("run_queue_wait")
    return 1.0 / (1.0 - min(float(wait), 0.99)) if isinstance(wait, (int, float)) and wait > 0 else 1.0


def _canary_ratio(cur: Mapping[str, Any], base: Mapping[str, Any]) -> float | None:
    """Current / baseline canary: the multi-threaded one when both ran with the same
    threads, else the one-thread loop (a thread change is the code's, not the machine's)."""
    key = "p50" if cur.get("threads") == base.get("threads") else "p50_one_thread"
    a, b = (cur.get("canary") or {}).get(key), (base.get("canary") or {}).get(key)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0:
        return float(a / b)
    return None


def _contention(state: Mapping[str, Any]) -> float:
    """How many times over the run's threads and everyone else's work filled the CPUs."""
    cpus, idle, own = state.get("cpus") or state.get("usable_cores"), state.get("idle_cores"), state.get("own_cores")
    threads = state.get("threads") or 1
    if not all(isinstance(x, (int, float)) for x in (cpus, idle, own)) or not cpus:
        return 1.0
    others = max(0.0, cpus - idle - own)
    return max(1.0, (threads + others) / cpus)
