"""The C++ runner's terminal reports render what the JSON says."""

from __future__ import annotations

from rich.console import Console

from parity.report.terminal.runner import check_cpp_report, runner_bench_report


def _text(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_bench_report_shows_each_level_and_the_speedup() -> None:
    level = {"threads": 1, "requests": 100, "items_per_s": 800.0, "p50": 0.001, "p90": 0.002, "p99": 0.004,
             "torch_threads": 2, "libpython_mapped": False}
    doc = {"target": "m.pt2", "batch_size": 8, "seconds_per_level": 2.0, "cpu_count": 2,
           "levels": [level, {**level, "threads": 2, "requests": 300, "items_per_s": 2400.0}]}
    text = _text(runner_bench_report(doc))
    assert "800" in text and "2400 (3.00x)" in text and "1 ms" in text and "4 ms" in text
    assert "no Python interpreter in the runner process" in text
    doc["levels"][1]["libpython_mapped"] = True
    assert "libpython WAS mapped" in _text(runner_bench_report(doc))


def test_check_report_names_the_process_and_the_verdict() -> None:
    check = {"passed": False, "pid": 4242, "libpython_mapped": False, "submodules": [], "tolerance": None,
             "cases": [{"label": "batch 3", "shapes": {"input": [3, 4]}, "ok": False, "error": None,
                        "skipped": None, "outputs": [{"name": "output", "metrics": {"max_abs": 0.5}}]}]}
    text = _text(check_cpp_report(check))
    assert "FAIL C++ runner (libtorch only, pid 4242, no Python interpreter" in text
    assert "batch 3" in text and "diverged" in text
