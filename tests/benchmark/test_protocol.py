"""The timing protocol: structure, minimums, warm-up bound, threads, inputs. No timing asserts."""

from __future__ import annotations

import json

import pytest
import torch
from bench_helpers import FakeClock

from parity.benchmark import BenchConfig, bench, bench_for_record
from parity.benchmark.protocol import END_TO_END, SCHEMA, _warm_up, measure
from parity.errors import BenchError, ParityError
from parity.target import Pipeline, TensorInputs

FAST = {"min_time": 0.0, "min_iters": 5, "max_warmup": 3}


def test_result_json_has_the_documented_shape(tiny_pipeline):
    doc = bench(tiny_pipeline, **{**FAST, "min_iters": 10}).to_json()
    json.dumps(doc)  # plain JSON types only
    assert doc["schema"] == SCHEMA
    for key in ("target", "batch_size", "items", "threads", "config", "load_seconds", "cold_first_call",
                "stages", "throughput", "peak_rss_bytes", "gpu", "env", "warnings"):
        assert key in doc
    assert set(doc["stages"]) == {"preprocess", "model", "postprocess", END_TO_END}
    for stage in doc["stages"].values():
        assert {"samples", "p50", "p90", "p99", "ci", "mean", "iqr", "noisy"} <= set(stage)
        assert stage["ci"]["p50"][0] <= stage["p50"] <= stage["ci"]["p50"][1]
    assert set(doc["cold_first_call"]) == set(doc["stages"])
    assert doc["gpu"] is None  # CPU model
    assert doc["peak_rss_bytes"] > 0
    assert doc["throughput"]["unit"] == "items/s" and doc["throughput"]["items_per_s"] > 0
    assert doc["env"]["schema"] == "parity.snapshot/1" and doc["env"]["runtime"]


def test_batch_cycles_small_inputs_up_to_batch_size(tiny_pipeline):
    seen = []
    pre = tiny_pipeline.preprocess
    tiny_pipeline.preprocess = lambda texts: (seen.append(list(texts)), pre(texts))[1]
    doc = bench(tiny_pipeline, batch_size=5, **FAST).to_json()
    assert doc["items"] == doc["batch_size"] == 5
    assert seen[0] == ["a", "bb", "ccc", "a", "bb"]
    assert doc["inputs"] == {"source": "example_inputs", "count": 3}


def test_both_minimums_are_respected_with_a_fake_clock(tiny_pipeline):
    # Each clock read advances 1 ms and a call reads the clock 8 times: ~8 ms per call,
    # so 0.5 s needs ~60 calls, far more than min_iters.
    clock = FakeClock()
    m = measure(tiny_pipeline, ["a", "b"], BenchConfig(batch_size=2, min_time=0.5, min_iters=3, max_warmup=2),
                clock=clock)
    n = len(m.samples[END_TO_END])
    assert 55 <= n <= 70
    assert all(len(s) == n for s in m.samples.values())  # raw samples kept, one per call and stage
    m = measure(tiny_pipeline, ["a"], BenchConfig(batch_size=1, min_time=0.0, min_iters=40, max_warmup=2),
                clock=FakeClock())
    assert len(m.samples[END_TO_END]) == 40


def test_fake_clock_times_are_exact_per_stage(tiny_pipeline):
    m = measure(tiny_pipeline, ["a"], BenchConfig(batch_size=1, min_time=0.0, min_iters=4, max_warmup=1),
                clock=FakeClock(step_ns=1000))
    # preprocess/model/postprocess: two reads each, 1 µs apart; end to end spans 8 reads
    assert m.samples["model"] == [1e-6] * 4
    assert m.samples[END_TO_END] == [7e-6] * 4
    assert m.cold_first_call["model"] == 1e-6


def test_warm_up_settles_on_steady_times(tiny_pipeline):
    config = BenchConfig(batch_size=1, min_time=1.0, min_iters=1, max_warmup=30)
    m = measure(tiny_pipeline, ["a"], config, clock=FakeClock())
    assert m.settled and m.warmup_calls == 7  # the cold call, then two windows of three


def test_warm_up_is_bounded_in_calls_when_times_never_settle():
    times = iter(range(1, 1000))

    def drifting_call():  # every call 1 s slower than the last
        return {END_TO_END: float(next(times))}

    cold, calls, settled = _warm_up(drifting_call, 12, 1e9, FakeClock())
    assert (cold[END_TO_END], calls, settled) == (1.0, 12, False)


def test_warm_up_is_bounded_in_time():
    clock = FakeClock(step_ns=10**9)  # each read: one more second
    calls, settled = _warm_up(lambda: {END_TO_END: 1.0 + clock.reads}, 1000, 5.0, clock)[1:]
    assert calls <= 6 and not settled


def test_threads_are_set_recorded_and_restored(tiny_pipeline):
    before = torch.get_num_threads()
    doc = bench(tiny_pipeline, threads=1, **FAST).to_json()
    assert doc["threads"]["requested"] == 1 and doc["threads"]["torch"] == 1
    assert all(p["num_threads"] == 1 for p in doc["threads"]["pools"])
    assert doc["env"]["runtime"]["torch"]["num_threads"] == 1  # the snapshot sees the run's threads
    assert torch.get_num_threads() == before


def test_pipeline_without_preprocess_has_no_preprocess_stage():
    model = torch.nn.Linear(3, 1).eval()
    rows = TensorInputs(torch.ones(3) * i for i in range(4))
    doc = bench(Pipeline(model=model), rows, batch_size=2, **FAST).to_json()
    assert set(doc["stages"]) == {"model", END_TO_END}
    assert doc["items"] == 2


def test_image_inputs_report_fps():
    model = torch.nn.Conv2d(3, 2, 3).eval()
    rows = TensorInputs(torch.zeros(3, 8, 8) for _ in range(2))
    doc = bench(Pipeline(model=model), rows, batch_size=2, **FAST).to_json()
    assert doc["throughput"]["unit"] == "FPS"


def test_bench_for_record_returns_json_with_short_defaults(tiny_pipeline):
    doc = bench_for_record(tiny_pipeline, None, 2)
    assert doc["schema"] == SCHEMA and doc["batch_size"] == 2
    assert doc["config"]["min_time"] <= 0.5


def test_target_spec_is_loaded_and_load_time_recorded(tmp_path):
    (tmp_path / "serve.py").write_text(
        "import torch\nfrom parity.target import Pipeline\n"
        "def build():\n    return Pipeline(model=torch.nn.Linear(2, 2).eval(),"
        " example_inputs=[[1.0, 2.0]], name='serve')\n")
    doc = bench(f"{tmp_path / 'serve.py'}:build", **FAST).to_json()
    assert doc["target"].endswith("serve.py:build")
    assert doc["load_seconds"] > 0
    assert doc["model"]["name"] == "serve" and doc["model"]["parameters"] == 6


@pytest.mark.parametrize("option", [{"batch_size": 0}, {"threads": 0}, {"min_iters": 0}, {"min_time": -1.0}])
def test_bad_options_name_the_flag(tiny_pipeline, option):
    with pytest.raises(BenchError) as err:
        bench(tiny_pipeline, **{**FAST, **option})
    flag = "--" + next(iter(option)).replace("_", "-")
    assert flag in str(err.value) and err.value.fix


def test_zero_inputs_are_refused(tiny_pipeline, tmp_path):
    with pytest.raises(BenchError, match="no inputs"):
        bench(tiny_pipeline, [], **FAST)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ParityError, match=r"empty\.txt"):
        bench(tiny_pipeline, str(empty), **FAST)


def test_a_failing_stage_is_a_user_error_naming_the_stage(tiny_pipeline):
    tiny_pipeline.postprocess = lambda out: out.reshape(7, 7)
    with pytest.raises(BenchError, match="postprocess stage failed: RuntimeError"):
        bench(tiny_pipeline, **FAST)


def test_peak_rss_is_this_process_not_a_parent_carried_over(tmp_path):
    # ru_maxrss is inherited across exec: a child of a process that once held 300 MB
    # would report 300 MB. VmHWM is the child's own peak.
    import subprocess
    import sys

    code = (
        "import sys; from parity.benchmark.protocol import _peak_rss_bytes; print(_peak_rss_bytes())"
    )
    parent = (
        "import subprocess, sys; big = bytearray(300 * 2**20); big[::4096] = b'x' * len(big[::4096]);"
        f"sys.exit(subprocess.run([sys.executable, '-c', {code!r}]).returncode)"
    )
    if not sys.platform.startswith("linux"):
        import pytest

        pytest.skip("VmHWM is Linux-only")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout
    assert int(out.strip()) < 200 * 2**20
