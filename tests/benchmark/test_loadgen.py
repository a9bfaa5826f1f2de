"""LoadGen scenarios (parity.benchmark.loadgen): server, offline, the max-QPS search, LoadGen absent."""

from __future__ import annotations

import sys

import pytest

from parity.benchmark import loadgen as lgm
from parity.benchmark.compare import compare_bench, validated_bench
from parity.errors import BenchError


def _work(x):
    return sum(range(100 + int(x)))


def test_server_runs_every_query_and_keeps_raw_latencies():
    run = lgm.run_server(_work, list(range(10)), qps=200, duration_s=0.3, workers=2)
    doc = run.to_json()
    assert doc["scenario"] == "server" and doc["qps"] == 200
    assert doc["requests"] == len(doc["latency"]["samples"]) == doc["items"] > 0
    assert {"p50", "p90", "p99", "ci"} <= set(doc["latency"])
    assert doc["loadgen"]["completed_per_s"] is not None and doc["loadgen"]["p99_ns"] is not None
    assert doc["cpu"]["seconds"] >= 0 and doc["cpu"]["utilisation"] is not None
    assert doc["peak_rss_bytes"] is None or doc["peak_rss_bytes"] > 0


def test_offline_batches_every_sample_it_is_sent():
    batches: list[int] = []

    def call(batch):
        batches.append(len(batch))

    run = lgm.run_offline(call, list(range(20)), batch_size=8, duration_s=0.2, expected_per_s=200)
    doc = run.to_json()
    assert doc["scenario"] == "offline" and sum(batches) == doc["items"] > 0
    assert max(batches) <= 8 and doc["requests"] == len(batches)
    assert doc["loadgen"]["samples_per_s"] is not None


def test_find_max_qps_answers_with_the_highest_passing_probe():
    result = lgm.find_max_qps(_work, list(range(5)), p99_bound_s=0.05, duration_s=0.2, probes=3).to_json()
    search = result["search"]
    assert 1 <= len(search["probes"]) <= 3 and search["capacity_per_s"] > 0
    passed = [p["qps"] for p in search["probes"] if p["passed"]]
    assert search["max_qps"] == (max(passed) if passed else None)
    for p in search["probes"]:  # the stated rule, applied to each probe's own figures
        keeps_up = p["completed_per_s"] >= lgm.KEEP_UP * p["scheduled_per_s"]
        assert p["passed"] == (keeps_up and p["p99"] is not None and p["p99"] <= 0.05)
    if passed:
        assert result["levels"][0]["qps"] == search["max_qps"]


def test_a_failing_request_is_a_bench_error():
    def boom(_x):
        raise ValueError("broken query")

    with pytest.raises(BenchError, match="ValueError: broken query"):
        lgm.run_server(boom, [1], qps=50, duration_s=0.1)


def test_loadgen_absent_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)  # import raises ImportError
    with pytest.raises(BenchError) as info:
        lgm.run_server(_work, [1], qps=10, duration_s=0.1)
    assert info.value.fix == "pip install 'parity[loadgen]'"


@pytest.mark.parametrize(("options", "flag"), [
    (lgm.ScenarioOptions("server", 1.0), "--qps"),
    (lgm.ScenarioOptions("offline", 1.0, find_max=True, p99_bound_s=0.1), "--find-max-qps"),
    (lgm.ScenarioOptions("server", 1.0, find_max=True), "--find-max-qps"),
    (lgm.ScenarioOptions("sever", 1.0, qps=1), "--scenario"),
])
def test_bad_scenario_options_name_the_flag(options, flag):
    with pytest.raises(BenchError, match=flag):
        options.validate()


def test_parse_summary_reads_loadgen_figures(tmp_path):
    summary = tmp_path / "mlperf_log_summary.txt"
    summary.write_text("Completed samples per second    : 90.15\nResult is : INVALID\n"
                       "Scheduled samples per second : 90.37\n99.00 percentile latency (ns)   : 4748945\n")
    got = lgm.parse_summary(summary)
    assert got["completed_per_s"] == 90.15 and got["scheduled_per_s"] == 90.37
    assert got["p99_ns"] == 4748945 and got["valid"] is False and got["samples_per_s"] is None


@pytest.mark.slow
def test_server_and_offline_on_the_demo_model(tmp_path):
    from test_load import demo_target

    target = demo_target(tmp_path)
    server = lgm.bench_scenario(target, options=lgm.ScenarioOptions("server", 0.5, qps=20)).to_json()
    assert validated_bench(server, "server")["load"]["scenario"] == "server"
    level = server["load"]["levels"][0]
    assert level["qps"] == 20 and level["requests"] > 0 and server["batch_size"] == 1
    offline = lgm.bench_scenario(target, options=lgm.ScenarioOptions("offline", 0.5)).to_json()
    assert offline["load"]["levels"][0]["items"] > 0 and offline["batch_size"] == 4  # the pipeline's batch
    again = lgm.bench_scenario(target, options=lgm.ScenarioOptions("server", 0.5, qps=20)).to_json()
    assert [s.stage for s in compare_bench(again, server, 0.1).stages] == ["server 20 qps"]
