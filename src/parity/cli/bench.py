"""``parity bench``: benchmark a target stage by stage, optionally against a baseline."""

from __future__ import annotations

import click

from parity.cli._common import (
    EXIT_FINDING,
    EXIT_OK,
    batch_size_option,
    check_output_file,
    emit_json,
    inputs_option,
    json_option,
    show,
    threads_option,
)
from parity.cli._load import bench_load_options
from parity.cli._runner import bench_runner_option


@click.command("bench")
@click.argument("target")
@inputs_option()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the parity.bench/1 result here.")
@batch_size_option("the pipeline's, or the baseline's")
@threads_option
@click.option("--min-time", type=float, help="Measure at least this many seconds [default: 2].")
@click.option("--min-iters", type=int, help="Measure at least this many calls [default: 20].")
@click.option("--against", type=click.Path(), help="Baseline: a bench JSON file or a record directory.")
@click.option("--max-slowdown", type=float, default=10.0, show_default=True,
              help="Percent slower a stage may be before exit 1.")
@click.option("--force", is_flag=True, help="Compare even against another model or batch size.")
@json_option
@bench_runner_option  # --runner cpp: cli/_runner.py
@bench_load_options  # --concurrency, --scenario...: cli/_load.py
def command(target: str, inputs: str | None, output: str | None, batch_size: int | None, threads: int | None,
            min_time: float | None, min_iters: int | None, against: str | None, max_slowdown: float,
            force: bool, as_json: bool) -> int:
    """Benchmark TARGET: warm-up, then per-stage timings with confidence intervals.

    Exit 1 when a stage is significantly slower than the baseline by more than
    --max-slowdown percent.

    TARGET is code that runs here: a .py file or a module, and a .pt or .pt2 file
    too (loading one unpickles). Pass only targets you trust.
    """
    from parity.benchmark.compare import bench_against
    from parity.cli._progress import progress_for

    check_output_file(output)
    with progress_for(as_json) as progress:
        result, comparison = bench_against(
            target, inputs, against=against, max_slowdown=max_slowdown / 100.0, force=force,
            batch_size=batch_size, threads=threads, min_time=min_time, min_iters=min_iters, progress=progress,
        )
    doc = result.to_json()
    if output:
        from parity._io import atomic_write_json

        atomic_write_json(output, doc)
    against_doc = comparison.to_json() if comparison is not None else None
    if as_json:
        emit_json({**doc, "comparison": against_doc} if against_doc is not None else doc)
    else:
        from parity.report.terminal import bench_comparison_report, bench_report

        show(bench_report(doc))
        if against_doc is not None:
            show(bench_comparison_report(against_doc))
    return EXIT_FINDING if comparison is not None and comparison.regression else EXIT_OK
