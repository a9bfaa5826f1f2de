"""`parity bench --concurrency / --scenario` and `parity export --bench --concurrency` on the demo model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SHORT = ("--duration", "0.3s")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's reference model as a TARGET file, as `parity demo` writes it."""
    from parity.demo import scenarios as sc

    root = tmp_path_factory.mktemp("demo")
    sc.save_tokenizers(root / "assets")
    (root / "targets").mkdir()
    path = sc.write_target_file(root / "targets" / "reference.py", sc.build_reference, "tokenizer", None,
                                root / "reference")
    return f"{path}:build"


def _error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("parity: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_concurrency_levels_write_a_bench_document_and_a_table(run_cli, demo, tmp_path):
    out = tmp_path / "load.json"
    code, stdout, _ = run_cli("bench", demo, "--concurrency", "1,2", *SHORT, "-o", out)
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "parity.bench/1" and doc["load"]["mode"] == "threads"
    assert [lv["concurrency"] for lv in doc["load"]["levels"]] == [1, 2]
    for word in ("clients", "req/s", "p99", "CPU", "RSS"):
        assert word in stdout


@pytest.mark.slow
def test_processes_load_the_target_in_each_worker(run_cli, demo):
    code, stdout, _ = run_cli("bench", demo, "--concurrency", "2", "--processes", *SHORT, "--json")
    assert code == 0
    load = json.loads(stdout)["load"]
    assert load["mode"] == "processes" and "workers" in load["levels"][0]["rss_basis"]


@pytest.mark.slow
def test_server_scenario_and_offline(run_cli, demo):
    code, stdout, _ = run_cli("bench", demo, "--scenario", "server", "--qps", "20", *SHORT, "--json")
    assert code == 0
    level = json.loads(stdout)["load"]["levels"][0]
    assert level["scenario"] == "server" and level["qps"] == 20 and level["latency"]["samples"]
    code, stdout, _ = run_cli("bench", demo, "--scenario", "offline", *SHORT)
    assert code == 0 and "offline" in stdout


@pytest.mark.slow
def test_find_max_qps_reports_the_rate_and_the_probes(run_cli, demo):
    code, stdout, _ = run_cli("bench", demo, "--scenario", "server", "--find-max-qps", "--p99-ms", "200",
                              "--duration", "0.25s")
    assert code == 0
    assert "p99 <= 200 ms" in stdout and "probes, in order" in stdout


def _parity(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parity", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)


@pytest.mark.slow
def test_against_across_two_fresh_processes(demo, tmp_path):
    base = tmp_path / "base.json"
    first = _parity("bench", demo, "--concurrency", "1,2", *SHORT, "-o", base, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = _parity("bench", demo, "--against", base, "--duration", "0.3s", "--json", cwd=tmp_path)
    doc = json.loads(second.stdout)
    comparison = doc["comparison"]
    assert [s["stage"] for s in comparison["stages"]] == ["1 thread", "2 threads"]
    assert second.returncode == (1 if comparison["regression"] else 0)


def test_mismatched_levels_exit_2_before_running(run_cli, demo, tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_side_doc({1: 50.0, 2: 60.0})))
    code, _, err = run_cli("bench", demo, "--concurrency", "1,4", *SHORT, "--against", base)
    assert code == 2
    _error_line(err, "differs from the baseline", "--concurrency 1,2")
    code, _, err = run_cli("bench", demo, "--concurrency", "1,2", "--processes", *SHORT, "--against", base)
    assert code == 2
    _error_line(err, "--processes differs from the baseline")


def test_loadgen_absent_exits_2_naming_the_extra(run_cli, demo, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)
    code, _, err = run_cli("bench", demo, "--scenario", "server", "--qps", "5", *SHORT)
    assert code == 2
    _error_line(err, "LoadGen", "pip install 'parity[loadgen]'")


def test_loadgen_absent_in_a_fresh_process(demo, tmp_path):
    """LoadGen blocked in a fresh interpreter: a stub on PYTHONPATH whose import fails."""
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "mlperf_loadgen.py").write_text("raise ImportError('No module named mlperf_loadgen')\n")
    env = {**os.environ, "PYTHONPATH": f"{stub}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "parity", "bench", demo, "--scenario", "offline"],
                          capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    _error_line(proc.stderr, "pip install 'parity[loadgen]'")


@pytest.mark.parametrize(("args", "needles"), [
    (("--qps", "5"), ("--scenario server",)),
    (("--concurrency", "0"), ("--concurrency",)),
    (("--concurrency", "1,x"), ("--concurrency",)),
    (("--concurrency", "1", "--duration", "soon"), ("--duration",)),
    (("--concurrency", "1", "--min-time", "1"), ("--min-time",)),
    (("--scenario", "server"), ("--qps",)),
    (("--scenario", "server", "--concurrency", "1,2", "--qps", "3"), ("one number",)),
    (("--scenario", "offline", "--processes"), ("--processes",)),
])
def test_bad_load_flags_exit_2_naming_the_flag(run_cli, demo, args, needles):
    code, _, err = run_cli("bench", demo, *args)
    assert code == 2
    _error_line(err, *needles)


def test_a_stage_baseline_is_refused_before_a_load_run(run_cli, demo, tmp_path):
    from bench_helpers import synthetic_result

    base = tmp_path / "stage.json"
    base.write_text(json.dumps(synthetic_result({"model": [0.01] * 10, "end_to_end": [0.01] * 10})))
    code, _, err = run_cli("bench", demo, "--concurrency", "1", *SHORT, "--against", base)
    assert code == 2
    _error_line(err, "stage benchmark")


def test_export_concurrency_needs_bench(run_cli, demo, tmp_path):
    code, _, err = run_cli("export", demo, "--format", "torchscript", "-o", tmp_path / "m.pt", "--concurrency", "1")
    assert code == 2
    _error_line(err, "--bench")


@pytest.mark.slow
def test_export_bench_concurrency_shows_eager_and_artifact_per_level(run_cli, demo, tmp_path):
    code, stdout, _ = run_cli("export", demo, "--format", "torchscript", "-o", tmp_path / "m.pt", "--bench",
                              "--no-check", "--concurrency", "1,2", *SHORT, "--json")
    assert code in (0, 1)
    side = json.loads(stdout)["bench"]["load"]
    assert [lv["concurrency"] for lv in side["levels"]] == [1, 2]
    for lv in side["levels"]:
        assert lv["eager"]["requests_per_s"] > 0 and lv["artifact"]["requests_per_s"] > 0
        assert lv["throughput_ratio"] == pytest.approx(lv["artifact"]["requests_per_s"] / lv["eager"]["requests_per_s"])
    assert side["levels"][0]["eager"]["scaling"] == 1.0


def _side_doc(rates: dict[int, float]) -> dict:
    """A load document whose level N completed ``rates[N]`` requests/s, p50 = N / rate."""
    from parity.benchmark import load as ld

    levels = [ld.LevelResult(n, [n / rate] * int(rate), 1.0, 0.5, 2, 1 << 20, "x") for n, rate in rates.items()]
    return ld.LoadBench(target="t", model={}, batch_size=1, threads=None,
                        load=ld.LoadResult("threads", 1.0, levels).to_json()).to_json()


def test_export_side_by_side_states_each_sides_scaling_and_renders():
    from parity.cli._common import console
    from parity.exporters.side_by_side import compare_load_sides
    from parity.report.terminal import export_load_report, load_report

    eager, art = _side_doc({1: 100.0, 4: 150.0}), _side_doc({1: 80.0, 4: 300.0})
    side = compare_load_sides(eager, art)
    four = side["levels"][1]
    assert four["eager"]["scaling"] == pytest.approx(1.5) and four["artifact"]["scaling"] == pytest.approx(3.75)
    assert four["throughput_ratio"] == pytest.approx(2.0)
    assert "eager reaches 1.50x" in side["summary"] and "the artifact 3.75x" in side["summary"]
    out = console()
    with out.capture() as captured:
        out.print(export_load_report(side), soft_wrap=True)
        out.print(load_report(eager), soft_wrap=True)
    text = captured.get()
    assert "art/eager" in text and "3.75x" in text and "clients" in text and "req/s" in text
