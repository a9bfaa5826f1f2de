"""compare_bench: verdicts on known samples, refusals, baseline files, planted regressions."""

from __future__ import annotations

import functools
import json
import time

import pytest
import torch
from bench_helpers import FakeClock, lognormal, sleepy_postprocess, synthetic_result

from parity.benchmark import bench, bench_from_file, compare_bench, protocol, verify_performance
from parity.benchmark.attribution import rank_differences
from parity.benchmark.compare import COMPARISON_SCHEMA, bench_against
from parity.errors import BenchError
from parity.target import Pipeline


def _stages(pre: float, model: float, post: float, seed: int = 0) -> dict:
    return {"preprocess": lognormal(pre, seed=seed), "model": lognormal(model, seed=seed + 1),
            "postprocess": lognormal(post, seed=seed + 2), "end_to_end": lognormal(pre + model + post, seed=seed + 3)}


def _verdicts(cmp) -> dict:
    return {s.stage: s.verdict for s in cmp.stages}


def test_a_slower_postprocess_is_found_and_is_a_regression():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    cur = synthetic_result(_stages(1e-3, 10e-3, 1.3e-3, seed=10))
    cmp = compare_bench(cur, base)
    assert _verdicts(cmp)["postprocess"] == "slower"
    assert _verdicts(cmp)["model"] == _verdicts(cmp)["preprocess"] == "no significant change"
    assert cmp.regression and cmp.verdict == "regression" and cmp.slower_stages == ["postprocess"]
    post = next(s for s in cmp.stages if s.stage == "postprocess")
    assert post.ci[0] < post.ratio < post.ci[1] and post.ratio == pytest.approx(1.3, rel=0.02)
    doc = cmp.to_json()
    json.dumps(doc)
    assert doc["schema"] == COMPARISON_SCHEMA and "postprocess" in doc["reason"]


def test_faster_and_unchanged_verdicts():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    cur = synthetic_result(_stages(1e-3, 7e-3, 1.02e-3, seed=20))
    verdicts = _verdicts(compare_bench(cur, base))
    assert verdicts["model"] == "faster"
    assert verdicts["postprocess"] == "no significant change"  # 2%: inside the noise margin


def test_slower_but_within_max_slowdown_is_not_a_regression():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    cur = synthetic_result(_stages(1e-3, 10.8e-3, 1e-3, seed=30))  # 8% slower model
    cmp = compare_bench(cur, base, max_slowdown=0.10)
    assert _verdicts(cmp)["model"] == "slower" and not cmp.regression
    assert compare_bench(cur, base, max_slowdown=0.05).regression


def test_noisy_runs_widen_the_margin_to_their_own_spread():
    def run(median: float, sigma: float, seed: int) -> dict:
        samples = lognormal(median, n=400, sigma=sigma, seed=seed)
        return synthetic_result({"model": samples, "end_to_end": samples})

    quiet = compare_bench(run(12.5e-3, 0.03, 1), run(10e-3, 0.03, 0))
    noisy = compare_bench(run(12.5e-3, 0.3, 1), run(10e-3, 0.3, 0))
    assert quiet.stages[0].verdict == "slower" and quiet.stages[0].margin == 0.05
    stage = noisy.stages[0]
    assert stage.noisy and stage.margin > 0.3  # IQR/median of a sigma=0.3 lognormal is ~0.41
    assert stage.verdict == "no significant change" and not noisy.regression


def test_microsecond_changes_are_not_findings():
    base = synthetic_result({"model": lognormal(1e-6), "end_to_end": lognormal(2e-6)})
    cur = synthetic_result({"model": lognormal(3e-6, seed=5), "end_to_end": lognormal(4e-6, seed=6)})
    assert set(_verdicts(compare_bench(cur, base)).values()) == {"no significant change"}


def test_comparison_is_deterministic():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    cur = synthetic_result(_stages(1e-3, 10.4e-3, 1e-3, seed=40))
    assert compare_bench(cur, base).to_json() == compare_bench(cur, base).to_json()


def test_other_batch_size_or_model_is_refused_unless_forced():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    other_batch = synthetic_result(_stages(1e-3, 10e-3, 1e-3), batch_size=16)
    other_model = synthetic_result(_stages(1e-3, 10e-3, 1e-3), model={"name": "m", "class": "x.Other",
                                                                      "parameters": 99, "kind": "callable"})
    with pytest.raises(BenchError, match="batch size 16 vs baseline 8") as err:
        compare_bench(other_batch, base)
    assert "--force" in err.value.fix
    with pytest.raises(BenchError, match="model class"):
        compare_bench(other_model, base)
    forced = compare_bench(other_model, base, force=True)
    assert forced.forced_mismatches and "forced past" not in json.dumps(forced.to_json())


def test_negative_max_slowdown_is_refused():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    with pytest.raises(BenchError, match="--max-slowdown"):
        compare_bench(base, base, max_slowdown=-0.1)


def test_runs_without_env_say_nothing_can_be_attributed():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3))
    cmp = compare_bench(base, base)
    assert cmp.attribution is None and any("no embedded environment" in w for w in cmp.warnings)


def test_a_malformed_embedded_snapshot_costs_only_the_attribution():
    base = synthetic_result(_stages(1e-3, 10e-3, 1e-3), env={"schema": "junk"})
    cur = synthetic_result(_stages(1e-3, 20e-3, 1e-3, seed=9), env={"schema": "junk"})
    cmp = compare_bench(cur, base)
    assert cmp.regression and cmp.attribution is None
    assert any("snapshot is unreadable" in w for w in cmp.warnings)


def test_differences_touching_the_slower_stage_rank_first():
    items = [
        {"category": "package", "name": "tokenizers", "risk": "high", "stages": ["preprocess"]},
        {"category": "package", "name": "numpy", "risk": "high", "stages": ["preprocess", "postprocess"]},
        {"category": "runtime", "name": "torch.num_threads", "risk": "medium", "stages": ["model"]},
        {"category": "package", "name": "torch", "risk": "high", "stages": ["model"]},
        {"category": "env_var", "name": "LANG", "risk": "low", "stages": []},
    ]
    ranked = rank_differences(items, ["model"])
    assert [d["name"] for d in ranked] == ["torch", "torch.num_threads", "tokenizers", "numpy", "LANG"]
    assert ranked[0]["touches_slower_stage"] == ["model"] and ranked[2]["touches_slower_stage"] == []
    assert [d["name"] for d in rank_differences(items, ["preprocess"])][:2] == ["tokenizers", "numpy"]


# --------------------------------------------------------------------------- baseline files


def test_bench_from_file_refuses_bad_files_naming_them(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"schema": "parity.bench/1", "stag')
    with pytest.raises(BenchError, match=r"broken\.json: not a bench result"):
        bench_from_file(bad)
    other = tmp_path / "snap.json"
    other.write_text(json.dumps({"schema": "parity.snapshot/1"}))
    with pytest.raises(BenchError, match=r"snap\.json: not a parity\.bench/1 result"):
        bench_from_file(other)
    no_samples = synthetic_result(_stages(1e-3, 1e-3, 1e-3))
    no_samples["stages"]["model"]["samples"] = []
    (tmp_path / "empty.json").write_text(json.dumps(no_samples))
    with pytest.raises(BenchError, match="stage 'model' has no valid raw samples"):
        bench_from_file(tmp_path / "empty.json")
    with pytest.raises(BenchError, match="no such file"):
        bench_from_file(tmp_path / "missing.json")


def test_bench_from_file_reads_a_record_directory(tmp_path):
    record = tmp_path / "golden"
    record.mkdir()
    with pytest.raises(BenchError, match="has no benchmark") as err:
        bench_from_file(record)
    assert "--bench" in err.value.fix
    doc = synthetic_result(_stages(1e-3, 1e-3, 1e-3))
    (record / "bench.json").write_text(json.dumps(doc))
    assert bench_from_file(record)["stages"]["model"]["samples"] == doc["stages"]["model"]["samples"]


# --------------------------------------------------------------------------- planted regressions (real runs)

QUICK = {"min_time": 0.15, "min_iters": 20, "max_warmup": 5}


def test_planted_postprocess_sleep_is_attributed_to_postprocess(tiny_pipeline):
    baseline = bench(tiny_pipeline, **QUICK)
    tiny_pipeline.postprocess = sleepy_postprocess(0.005)
    current = bench(tiny_pipeline, **QUICK)
    cmp = compare_bench(current, baseline)
    assert cmp.regression
    assert "postprocess" in cmp.slower_stages
    worst = max((s for s in cmp.stages if s.stage != "end_to_end"), key=lambda s: s.ratio)
    assert worst.stage == "postprocess"
    assert next(s for s in cmp.stages if s.stage == "postprocess").current_p50 >= 0.005
    assert cmp.attribution is not None  # both runs embed their environment


class ThreadScaledWork(torch.nn.Module):
    """Work that scales perfectly with torch's intra-op threads: it advances a virtual
    clock by 8 ms / threads, so the result does not depend on what else the machine is
    doing. The thread setting, the snapshots and their diff are all real."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += 8_000_000 // torch.get_num_threads()
        return x * 2


def _assert_model_slower_and_threads_top_suspect(cmp, threads_before: int, threads_after: int) -> None:
    assert "model" in cmp.slower_stages and cmp.regression
    top = cmp.attribution[0]
    assert "thread" in top["name"] and "model" in top["touches_slower_stage"]
    assert (top["a"], top["b"]) == (threads_before, threads_after)


@pytest.mark.usefixtures("quiet_machine")  # the timings are virtual: the machine's state is not theirs
def test_one_thread_against_two_is_a_model_slowdown_with_threads_the_top_suspect(monkeypatch):
    clock = FakeClock(step_ns=1000)
    monkeypatch.setattr(protocol, "measure", functools.partial(protocol.measure, clock=clock))
    pipeline = Pipeline(model=ThreadScaledWork(clock), example_inputs=[torch.ones(4)], batch_size=2)
    options = {"min_time": 0.1, "min_iters": 15, "max_warmup": 3}
    baseline = bench(pipeline, threads=2, **options)
    current = bench(pipeline, threads=1, **options)
    _assert_model_slower_and_threads_top_suspect(compare_bench(current, baseline), 2, 1)


@pytest.mark.slow
def test_verify_performance_remeasures_with_the_baseline_config(tiny_pipeline):
    baseline = bench(tiny_pipeline, batch_size=3, threads=1, **QUICK).to_json()
    doc = verify_performance(tiny_pipeline, None, baseline, 0.10)
    assert doc["schema"] == COMPARISON_SCHEMA
    assert doc["current"]["batch_size"] == 3 and doc["current"]["threads"]["requested"] == 1
    assert doc["current"]["config"]["min_time"] == QUICK["min_time"]


def test_bench_against_refuses_an_explicit_other_batch_size_before_running(tiny_pipeline, tmp_path):
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(bench(tiny_pipeline, batch_size=2, **QUICK).to_json()))
    calls = []
    tiny_pipeline.preprocess = lambda texts: calls.append(texts)
    with pytest.raises(BenchError, match="--batch-size 4 differs from the baseline's 2"):
        bench_against(tiny_pipeline, against=baseline, batch_size=4)
    assert calls == []  # refused before any call


def test_bench_against_defaults_to_the_baseline_batch_size(tiny_pipeline, tmp_path):
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(bench(tiny_pipeline, batch_size=2, **QUICK).to_json()))
    start = time.perf_counter()
    result, cmp = bench_against(tiny_pipeline, against=baseline, min_time=0.05)
    assert result.config.batch_size == 2 and cmp is not None
    assert time.perf_counter() - start < 60  # sanity bound only, not a timing claim
