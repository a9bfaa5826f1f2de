"""Closed-loop load (parity.benchmark.load): levels, clients, figures, comparison. No timing assertions."""

from __future__ import annotations

import os
import threading

import pytest

from parity.benchmark import load as ld
from parity.benchmark.compare import compare_bench, validated_bench
from parity.errors import BenchError


def demo_target(root) -> str:
    """The demo's reference model as a TARGET file (how the demo writes its targets)."""
    from parity.demo import scenarios as sc

    sc.save_tokenizers(root / "assets")
    (root / "targets").mkdir(exist_ok=True)
    path = sc.write_target_file(root / "targets" / "reference.py", sc.build_reference, "tokenizer", None,
                                root / "reference")
    return f"{path}:build"


def _work(x):
    return sum(range(200 + x))


def test_each_level_reports_throughput_latency_cpu_and_memory():
    result = ld.run_concurrency(_work, [1, 2, 3], [1, 3], 0.2).to_json()
    assert result["kind"] == "concurrency" and result["mode"] == "threads"
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 3]
    for lv in result["levels"]:
        lat = lv["latency"]
        assert lv["requests"] == len(lat["samples"]) == lat["n"] > 0
        assert set(lat["ci"]) >= {"p50", "p90", "p99"} and lat["p50"] <= lat["p90"] <= lat["p99"]
        assert lv["throughput"]["requests_per_s"] == pytest.approx(lv["requests"] / lv["wall_s"])
        assert lv["cpu"]["seconds"] >= 0 and lv["cpu"]["cores"] >= 1
        assert lv["cpu"]["utilisation"] == pytest.approx(lv["cpu"]["seconds"] / lv["wall_s"] / lv["cpu"]["cores"])
        if os.path.exists("/proc/self/status"):
            assert lv["peak_rss_bytes"] > 0


def test_level_n_runs_n_client_threads():
    seen: set[int] = set()
    lock = threading.Lock()

    def call(_x):
        with lock:
            seen.add(threading.get_ident())

    ld.run_concurrency(call, [0], [4], 0.1)
    assert len(seen) == 4


def test_peak_memory_is_measured_per_level():
    def allocate(_x):
        block = bytearray(80_000_000)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
        return len(block)

    busy = ld.run_concurrency(allocate, [1], [1], 0.1).levels[0]
    quiet = ld.run_concurrency(_work, [1], [1], 0.1).levels[0]  # after: its peak must not include busy's
    if quiet.peak_rss_bytes is None:
        pytest.skip("no /proc on this platform")
    assert busy.peak_rss_bytes - quiet.peak_rss_bytes > 60_000_000


class NotInParent:
    """Fails when called in the parent process, or in a worker that did not set up."""

    def __init__(self) -> None:
        self.parent = os.getpid()
        self.ready = False

    def setup(self) -> None:
        self.ready = True

    def __call__(self, x):
        if os.getpid() == self.parent or not self.ready:
            raise RuntimeError("called in the parent process")
        return x


def test_processes_call_in_worker_processes_after_setup():
    result = ld.run_concurrency(NotInParent(), [1, 2], [2], 0.2, processes=True).to_json()
    level = result["levels"][0]
    assert result["mode"] == "processes" and level["requests"] > 0
    assert "workers" in level["rss_basis"]
    with pytest.raises(BenchError, match="called in the parent process"):
        ld.run_concurrency(NotInParent(), [1], [1], 0.1)


class FailsToLoad:
    def setup(self) -> None:
        raise ValueError("no model here")

    def __call__(self, x):
        return x


def test_a_worker_that_cannot_set_up_is_named_not_its_peers():
    with pytest.raises(BenchError, match="ValueError: no model here"):
        ld.run_concurrency(FailsToLoad(), [1], [2], 0.1, processes=True)


def test_a_failing_request_is_a_bench_error_naming_it():
    def boom(_x):
        raise ValueError("bad request 7")

    with pytest.raises(BenchError, match="ValueError: bad request 7") as info:
        ld.run_concurrency(boom, [1], [2], 0.1)
    assert "without --concurrency" in info.value.fix


@pytest.mark.parametrize(("levels", "duration", "flag"), [
    ([0], 1.0, "--concurrency"), ([1, 1], 1.0, "--concurrency"), ([], 1.0, "--concurrency"),
    ([1], 0.0, "--duration"), ([1], float("inf"), "--duration"),
])
def test_bad_levels_and_durations_name_the_flag(levels, duration, flag):
    with pytest.raises(BenchError, match=flag):
        ld.run_concurrency(_work, [1], levels, duration)


def test_parse_flags():
    assert ld.parse_levels("1,2, 4,8") == [1, 2, 4, 8]
    assert [ld.parse_duration(t) for t in ("2s", "500ms", "1m", "3")] == [2.0, 0.5, 60.0, 3.0]
    for bad in ("x", "-1s", "0"):
        with pytest.raises(BenchError, match="--duration"):
            ld.parse_duration(bad)
    with pytest.raises(BenchError, match="--concurrency"):
        ld.parse_levels("1,two")


@pytest.mark.slow
def test_bench_load_on_the_demo_model_is_a_bench_document(tmp_path):
    doc = ld.bench_load(demo_target(tmp_path), levels=[1, 2], duration_s=0.3).to_json()
    assert validated_bench(doc, "doc")["schema"] == "parity.bench/1"
    assert doc["model"]["name"] == "demo-reference" and doc["batch_size"] == 1 and doc["stages"] == {}
    assert [lv["concurrency"] for lv in doc["load"]["levels"]] == [1, 2]
    assert doc["load"]["stage"] == "pipeline" and doc["env"]["schema"] == "parity.snapshot/1"
    assert doc["machine"]["canary"]["n"] == 5


# --------------------------------------------------------------------------- comparison


def _load_doc(levels: dict[int, float], mode: str = "threads", seed: int = 0) -> dict:
    from bench_helpers import lognormal

    result = ld.LoadResult(mode, 1.0, [ld.LevelResult(n, lognormal(med, n=200, seed=seed + n), 1.0, 0.5, 2, None, "x")
                                       for n, med in levels.items()])
    return ld.LoadBench(target="t.py:build", model={"name": "m", "class": "C", "parameters": 1, "kind": "callable"},
                        batch_size=1, threads=None, load=result.to_json()).to_json()


def test_against_compares_level_by_level_and_finds_a_planted_slowdown():
    base = _load_doc({1: 0.010, 4: 0.020})
    cur = _load_doc({1: 0.010, 4: 0.030}, seed=7)
    comparison = compare_bench(cur, base, 0.10).to_json()
    by_level = {s["stage"]: s for s in comparison["stages"]}
    assert list(by_level) == ["1 thread", "4 threads"]
    assert by_level["4 threads"]["regression"] and not by_level["1 thread"]["regression"]
    assert comparison["regression"]


@pytest.mark.parametrize(("cur", "fix"), [
    (_load_doc({1: 0.01, 2: 0.01}), "--concurrency 1,4"),
    (_load_doc({1: 0.01, 4: 0.01}, mode="processes"), "--concurrency 1,4"),
])
def test_mismatched_levels_are_refused_with_the_flags_that_match(cur, fix):
    with pytest.raises(BenchError, match="differ from the baseline") as info:
        compare_bench(cur, _load_doc({1: 0.01, 4: 0.01}), 0.1)
    assert fix in info.value.fix


def test_a_stage_benchmark_and_a_load_run_are_not_compared():
    from bench_helpers import synthetic_result

    stage = synthetic_result({"model": [0.01] * 20, "end_to_end": [0.01] * 20}, batch_size=1,
                             model={"name": "m", "class": "C", "parameters": 1, "kind": "callable"})
    with pytest.raises(BenchError, match="stage benchmark"):
        compare_bench(_load_doc({1: 0.01}), stage, 0.1)
