"""A loaded or throttled machine makes a slowdown inconclusive, not "slower" (issue 13):
load, steal, frequency, the canary's drift, and the run's own spread. A real slowdown on
a quiet machine is still a regression."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench_helpers import lognormal, synthetic_result

from parity.benchmark import bench, compare_bench
from parity.benchmark.compare import bench_against
from parity.benchmark.machine import (
    LOAD_SAFETY,
    MachineWatch,
    disturbance,
    machine_drift,
    usable_cores,
)
from parity.target import Pipeline

CANARY = {"p50": 1e-4, "p50_one_thread": 2e-4, "n": 50}


def _quiet(threads: int = 2) -> dict:
    return {"threads": threads, "cpus": 2, "usable_cores": 2, "idle_cores": 1.0, "own_cores": 1.0,
            "load_avg": {"start": 0.5, "end": 1.0}, "steal_fraction": 0.0, "freq_khz": None,
            "throttle_events": None, "canary": dict(CANARY), "reasons": [], "disturbed": False}


def _loaded(canary_factor: float, threads: int = 2) -> dict:
    state = {**_quiet(threads), "idle_cores": 0.0, "own_cores": 0.9,
             "canary": {**CANARY, "p50": CANARY["p50"] * canary_factor,
                        "p50_one_thread": CANARY["p50_one_thread"] * canary_factor}}
    state["reasons"] = disturbance(state)
    state["disturbed"] = bool(state["reasons"])
    return state


def _run(model_seconds: float, machine: dict, seed: int = 0) -> dict:
    samples = {"model": lognormal(model_seconds, seed=seed), "end_to_end": lognormal(model_seconds, seed=seed + 1)}
    return synthetic_result(samples, machine=machine)


def _model(cmp):
    return next(s for s in cmp.stages if s.stage == "model")


# --------------------------------------------------------------------------- signals


def test_a_quiet_machine_has_nothing_to_say() -> None:
    assert disturbance(_quiet()) == []


@pytest.mark.parametrize(("change", "words"), [
    ({"idle_cores": 0.1, "own_cores": 0.9}, "the CPUs were busy: 0.1 of 2 idle on average, other processes used 1.0"),
    ({"load_avg": {"start": 5.5, "end": 5.0}}, "load average 5.5 on 2 CPUs"),
    ({"steal_fraction": 0.08}, "the hypervisor took 8% of CPU time (steal)"),
    ({"freq_khz": {"start": {"0": 3_000_000}, "end": {"0": 2_000_000}}}, "CPU frequency changed by up to 50%"),
    ({"throttle_events": 3}, "3 thermal throttling events"),
    ({"run_queue_wait": 0.3}, "the benchmark waited for a CPU 30% of the time"),
])
def test_each_signal_is_named(change: dict, words: str) -> None:
    reasons = disturbance({**_quiet(), **change})
    assert len(reasons) == 1 and words in reasons[0]


def test_a_real_run_carries_its_machine_state(tiny_pipeline) -> None:
    # /proc/stat counts in clock ticks (10 ms): a run shorter than a few ticks has no
    # idle figure to give, so measure for long enough that one is always there.
    doc = bench(tiny_pipeline, min_time=0.2, min_iters=8, max_warmup=2).to_json()
    machine = doc["machine"]
    json.dumps(machine)
    assert machine["usable_cores"] == usable_cores() >= 1 and machine["threads"] >= 1
    assert machine["canary"]["n"] >= 2 and machine["canary"]["p50"] > 0  # after calls 1, 5, ...
    assert isinstance(machine["disturbed"], bool) and isinstance(machine["reasons"], list)
    if sys.platform.startswith("linux"):
        assert isinstance(machine["idle_cores"], float) and 0 <= machine["steal_fraction"] <= 1


def _burners(count: int, seconds: float) -> list[subprocess.Popen]:
    """CPU-burning processes that stop by themselves after ``seconds`` (killed sooner by the caller)."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")
def test_busy_cpus_mark_the_run() -> None:
    procs = _burners(usable_cores() + 1, 20)
    try:
        time.sleep(0.3)
        watch = MachineWatch(1)
        time.sleep(1.0)
        state = watch.finish()
    finally:
        _stop(procs)
    assert state["disturbed"] and any("the CPUs were busy" in r for r in state["reasons"])


# --------------------------------------------------------------------------- verdicts


def test_a_slowdown_within_the_machines_drift_is_inconclusive() -> None:
    cmp = compare_bench(_run(15e-3, _loaded(1.5), seed=10), _run(10e-3, _quiet()))
    model = _model(cmp)
    assert model.ratio == pytest.approx(1.5, rel=0.02)
    assert model.verdict == "inconclusive" and not model.regression and model.drift >= 1.5 * LOAD_SAFETY
    assert cmp.verdict == "inconclusive" and not cmp.regression and cmp.slower_stages == []
    assert "the machine was not quiet" in cmp.reason and "this run: the CPUs were busy" in cmp.reason
    doc = cmp.to_json()
    assert doc["machine"]["disturbed"] and doc["machine"]["canary_ratio"] == pytest.approx(1.5)


def test_the_same_slowdown_on_a_quiet_machine_is_a_regression() -> None:
    cmp = compare_bench(_run(15e-3, _quiet(), seed=10), _run(10e-3, _quiet()))
    assert _model(cmp).verdict == "slower" and cmp.regression and cmp.verdict == "regression"
    assert not cmp.to_json()["machine"]["disturbed"]


def test_a_slowdown_beyond_the_drift_is_still_a_regression() -> None:
    cmp = compare_bench(_run(40e-3, _loaded(1.5), seed=10), _run(10e-3, _quiet()))
    assert _model(cmp).verdict == "slower" and cmp.regression


def test_a_canary_that_ran_slower_is_evidence_even_without_other_signals() -> None:
    # Same load readings, but the machine's own speed moved (throttling the kernel did not show).
    drifted = {**_quiet(), "canary": {**CANARY, "p50": CANARY["p50"] * 1.6}}
    cmp = compare_bench(_run(15e-3, drifted, seed=10), _run(10e-3, _quiet()))
    assert cmp.verdict == "inconclusive" and "fixed matrix multiply ran 1.60x slower" in cmp.reason


def test_a_faster_claim_needs_a_quiet_baseline() -> None:
    cmp = compare_bench(_run(7e-3, _quiet(), seed=10), _run(10e-3, _loaded(1.5)))
    assert _model(cmp).verdict == "inconclusive" and not cmp.regression
    cmp = compare_bench(_run(7e-3, _quiet(), seed=10), _run(10e-3, _quiet()))
    assert _model(cmp).verdict == "faster"


def test_a_thread_change_is_judged_by_the_one_thread_canary() -> None:
    one, two = _quiet(threads=1), _quiet(threads=2)
    one["canary"] = {**CANARY, "p50": CANARY["p50"] * 2}  # the multiply is slower on one thread: expected
    drift = machine_drift(one, two)
    assert drift.canary_ratio == pytest.approx(1.0) and not drift.disturbed


def test_a_baseline_without_machine_state_uses_the_current_runs_contention() -> None:
    base = _run(10e-3, _quiet())
    base["machine"] = None  # written by an older parity
    cmp = compare_bench(_run(15e-3, _loaded(1.0), seed=10), base)
    assert cmp.verdict == "inconclusive" and _model(cmp).drift > 1.0


# --------------------------------------------------------------------------- real runs

SLEEP = 0.02  # long against the scheduler's wake-up delays on a busy machine


def _sleeping_pipeline() -> Pipeline:
    import torch

    def model(x):
        time.sleep(SLEEP)
        return x

    return Pipeline(model=model, example_inputs=[torch.ones(4)] * 4, batch_size=4, name="sleeper")


def _planted(seconds: float):
    def post(out):
        time.sleep(seconds)
        return out

    return post


@pytest.mark.usefixtures("quiet_machine")
def test_a_real_2x_slowdown_on_a_quiet_machine_is_a_regression(tmp_path: Path) -> None:
    pipeline = _sleeping_pipeline()
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(bench(pipeline, min_time=0.3, min_iters=20).to_json()))
    pipeline.postprocess = _planted(SLEEP)  # every call now takes twice as long
    _, cmp = bench_against(pipeline, against=baseline)
    assert cmp is not None and cmp.regression and cmp.verdict == "regression"
    e2e = next(s for s in cmp.stages if s.stage == "end_to_end")
    assert e2e.ci[0] > 1.5 and e2e.drift == 1.0


SERVING = '''
import os
import time

import torch
from parity import Pipeline


def model(x):
    time.sleep(float(os.environ.get("MODEL_SLEEP", "0.02")))
    return x


def post(out):
    time.sleep(float(os.environ.get("PLANTED_SLEEP", "0")))
    return out


def build():
    planted = post if os.environ.get("PLANTED_SLEEP") else None  # a stage of microseconds is all noise
    return Pipeline(model=model, postprocess=planted, example_inputs=[torch.ones(4)] * 4, batch_size=4, name="s")
'''


@pytest.mark.usefixtures("quiet_machine")
def test_bench_against_exits_1_for_a_real_2x_slowdown_on_a_quiet_machine(tmp_path: Path, run_cli,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "serving.py").write_text(SERVING)
    target = f"{tmp_path / 'serving.py'}:build"
    fast = ("--min-time", "0.3", "--min-iters", "20")
    code, _, err = run_cli("bench", target, "-o", str(tmp_path / "base.json"), *fast)
    assert code == 0, err
    monkeypatch.setenv("PLANTED_SLEEP", "0.02")
    code, out, err = run_cli("bench", target, "--against", str(tmp_path / "base.json"), "--json")
    assert code == 1, err
    assert json.loads(out)["comparison"]["verdict"] == "regression"


def _torch_pipeline() -> Pipeline:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256)).eval()
    return Pipeline(model=model, example_inputs=[torch.randn(256) for _ in range(32)], batch_size=32, name="mlp")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")
def test_aa_under_artificial_load_is_never_called_slower(tmp_path: Path) -> None:
    """The same model, measured before and under CPU burners (and the other way round):
    whatever the ratio, the verdict must not claim a slowdown the machine explains."""
    pipeline = _torch_pipeline()
    options = {"min_time": 0.8, "min_iters": 20}
    verdicts = []
    for _ in range(2):
        quiet_run = bench(pipeline, **options)
        procs = _burners(usable_cores() + 1, 30)
        try:
            time.sleep(0.3)
            loaded_run = bench(pipeline, **options)
        finally:
            _stop(procs)
        verdicts.append(compare_bench(loaded_run, quiet_run).to_json())
        verdicts.append(compare_bench(quiet_run, loaded_run).to_json())
    for doc in verdicts:
        assert doc["verdict"] not in ("slower", "regression"), doc["reason"]
        assert not doc["regression"]
    loaded_first = verdicts[0]
    assert loaded_first["machine"]["disturbed"]


class _Watch:
    """A MachineWatch whose canary ran ``factor`` times the quiet one, on a busy machine."""

    factor = 1.0

    def __init__(self, threads: int) -> None:
        import types

        self.threads = threads
        self.canary = types.SimpleNamespace(run=lambda: None)

    def finish(self) -> dict:
        return _loaded(self.factor, self.threads) if self.factor != 1.0 else _quiet(self.threads)


def _record_then_verify(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch, canary_factor: float,
                        **planted: str) -> tuple[int, dict]:
    from parity.benchmark import protocol

    (tmp_path / "serving.py").write_text(SERVING)
    target = f"{tmp_path / 'serving.py'}:build"
    monkeypatch.setattr(protocol, "MachineWatch", _Watch)
    code, _, err = run_cli("record", target, "-o", str(tmp_path / "golden"), "--bench")
    assert code == 0, err
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(_Watch, "factor", canary_factor)
    code, out, err = run_cli("verify", str(tmp_path / "golden"), target, "--max-slowdown", "10", "--json")
    assert code in (0, 1), err
    return code, json.loads(out)["performance"]


def test_verify_max_slowdown_on_a_loaded_machine_is_inconclusive_and_passes(tmp_path: Path, run_cli,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The model takes twice as long, and so did the machine's canary: the machine explains it.
    code, perf = _record_then_verify(tmp_path, run_cli, monkeypatch, 3.0, MODEL_SLEEP="0.04")
    assert code == 0 and perf["verdict"] == "inconclusive" and not perf["regression"]
    assert "the machine was not quiet" in perf["reason"]


def test_verify_max_slowdown_on_a_quiet_machine_fails_a_real_slowdown(tmp_path: Path, run_cli,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    code, perf = _record_then_verify(tmp_path, run_cli, monkeypatch, 1.0, MODEL_SLEEP="0.04")
    assert code == 1 and perf["verdict"] == "regression"


def test_no_stage_is_a_regression_unless_it_is_slower() -> None:
    # A stage whose own spread swamps the change is never a regression, however large the ratio.
    base = synthetic_result({"model": lognormal(1e-3, sigma=1.0), "end_to_end": lognormal(1e-3)},
                            machine=_quiet())
    cur = synthetic_result({"model": lognormal(4e-3, sigma=1.0, seed=5), "end_to_end": lognormal(1e-3, seed=6)},
                           machine=_loaded(1.5))
    for stage in compare_bench(cur, base).stages:
        assert not stage.regression or stage.verdict == "slower"


def test_time_spent_waiting_for_a_cpu_is_drift() -> None:
    # Long calls on a starved CPU take 1 / (1 - wait) times as long, whatever the canary says.
    starved = {**_quiet(), "run_queue_wait": 0.6}
    starved["reasons"] = disturbance(starved)
    starved["disturbed"] = True
    drift = machine_drift(starved, {**_quiet(), "run_queue_wait": 0.2})
    assert drift.slow == pytest.approx(LOAD_SAFETY * (1 / 0.4) / (1 / 0.8))
    cmp = compare_bench(_run(18e-3, starved, seed=10), _run(10e-3, _quiet()))
    assert cmp.verdict == "inconclusive" and "waited for a CPU 60% of the time" in cmp.reason


def test_a_pipeline_that_mostly_sleeps_is_barely_slowed_by_a_busy_cpu() -> None:
    # The same busy machine; the pipeline wanted a CPU 10% of the time, so at most that
    # share of its time can be stretched by the others.
    busy = _loaded(2.0)
    sleeper = {**busy, "cpu_demand": 0.1}
    assert machine_drift(busy, _quiet()).slow == pytest.approx(2.0 * LOAD_SAFETY)
    assert machine_drift(sleeper, _quiet()).slow == pytest.approx(1 + 0.1 * (2.0 * LOAD_SAFETY - 1))
    cmp = compare_bench(_run(20e-3, sleeper, seed=10), _run(10e-3, _quiet()))
    assert cmp.regression and cmp.verdict == "regression"
