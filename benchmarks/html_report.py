"""HTML report: render time and size for 2,000 layers, page load in headless Chromium,
and the wall time of ``parity demo``.

Every figure is paired with a reference measured in the same run, repetitions
interleaved, medians reported (the machine is shared and noisy):

- render: ``render_html`` of a 2,000-layer result vs a 40-layer one;
- size: the 2,000-layer file vs the plotly.js it inlines;
- page load: time from navigation to the plot being drawn (``performance.now()`` when
  ``Plotly.newPlot`` resolves) and to the first contentful paint (the verdict), and the
  CPU time all Chromium processes spent on it, in a fresh headless Chromium per load,
  2,000-layer report vs 40-layer report and vs a page that only runs plotly.js;
- demo: ``python -m parity demo`` wall time vs ``python -c "import torch"``.

Run:  .venv/bin/python benchmarks/html_report.py [--reps 5] [--no-demo]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "report"))

from chromium_cdp import Browser, chromium_available  # noqa: E402
from verify_samples import verify_result  # noqa: E402

from parity.report.html import _plotly_js, render_html  # noqa: E402

LAYERS, REF_LAYERS = 2000, 40


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_render(reps: int) -> dict[str, float]:
    big, small = verify_result(LAYERS, diverge_at=1500), verify_result(REF_LAYERS)
    t_big, t_small = [], []
    for _ in range(reps):
        for result, out in ((big, t_big), (small, t_small)):
            start = time.perf_counter()
            render_html(result)
            out.append(time.perf_counter() - start)
    return {"render_2000_s": median(t_big), "render_40_s": median(t_small), "ratio": median(t_big) / median(t_small)}


def bench_size(page: str) -> dict[str, float]:
    size, plotly = len(page.encode()), len(_plotly_js().encode())
    return {"bytes_2000": size, "plotly_js_bytes": plotly, "ratio": size / plotly}


def load_once(path: Path, workdir: Path) -> dict[str, float]:
    """One cold load: a fresh browser, navigate, wait for the plot; in-page timings (ms)."""
    with Browser(workdir) as browser:
        browser.call("Performance.enable")
        browser.open("about:blank")
        cpu = chromium_cpu_seconds(browser.proc.pid)
        wall = time.perf_counter()
        browser.call("Page.navigate", {"url": path.as_uri()})
        browser.wait_for("document.body && document.body.getAttribute('data-plot-ready')")
        wall = time.perf_counter() - wall
        cpu = chromium_cpu_seconds(browser.proc.pid) - cpu
        ready = float(browser.evaluate("document.body.getAttribute('data-plot-ready-ms')"))
        fcp = browser.evaluate(
            "(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime")
        metrics = {m["name"]: m["value"] for m in browser.call("Performance.getMetrics")["metrics"]}
        errors = browser.console_errors()
    if errors:
        raise RuntimeError(f"{path}: console errors {errors}")
    # ScriptDuration/TaskDuration: main-thread time spent in script / in all tasks (ms).
    return {"plot_ready_ms": ready, "fcp_ms": float(fcp), "wall_ms": wall * 1000,
            "script_ms": metrics["ScriptDuration"] * 1000, "task_ms": metrics["TaskDuration"] * 1000,
            "cpu_ms": cpu * 1000}


def chromium_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of chromium and all its child processes so far.

    CPU time barely depends on how many other jobs share the cores, so it estimates
    the load time on an idle machine where wall times cannot be trusted.
    """
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def bench_load(pages: dict[str, Path], reps: int, workdir: Path) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
    for i in range(reps):
        order = list(pages) if i % 2 == 0 else list(reversed(pages))
        for name in order:
            samples[name].append(load_once(pages[name], workdir))
    out = {}
    for name, runs in samples.items():
        out[name] = {k: median([r[k] for r in runs]) for k in runs[0]}
    out["ratio_2000_vs_40"] = {k: out["report_2000"][k] / out["report_40"][k] for k in out["report_2000"]}
    out["ratio_2000_vs_plotly_only"] = {k: out["report_2000"][k] / out["plotly_only"][k] for k in out["report_2000"]}
    return out


def plotly_only_page() -> str:
    """The floor: a page that only runs the inlined plotly.js, then says it is ready."""

    ready = ("document.body.setAttribute('data-plot-ready-ms', performance.now().toFixed(1));"
             "document.body.setAttribute('data-plot-ready', '1');")
    return f"<!DOCTYPE html><html><body><h1>plotly only</h1><script>{_plotly_js()}</script><script>{ready}</script></body></html>"


def bench_demo(reps: int) -> dict[str, float]:
    demo, torch_import = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "parity", "demo", "-o", f"{tmp}/d"], check=True,
                           capture_output=True)
            demo.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        torch_import.append(time.perf_counter() - start)
    return {"demo_s": median(demo), "import_torch_s": median(torch_import), "ratio": median(demo) / median(torch_import)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"loadavg_start": os.getloadavg(), "render": bench_render(args.reps)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pages = {"report_2000": work / "report_2000.html", "report_40": work / "report_40.html",
                 "plotly_only": work / "plotly_only.html"}
        pages["report_2000"].write_text(render_html(verify_result(LAYERS, diverge_at=1500)))
        pages["report_40"].write_text(render_html(verify_result(REF_LAYERS)))
        pages["plotly_only"].write_text(plotly_only_page())
        results["size"] = bench_size(pages["report_2000"].read_text())
        if chromium_available():
            results["load"] = bench_load(pages, args.reps, work)
        else:
            results["load"] = "skipped: no chromium"
    if not args.no_demo:
        results["demo"] = bench_demo(max(1, args.reps // 2))
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
