"""``parity bench`` under load and ``parity export --bench`` under load: the options and the flow.

``bench_load_options`` and ``export_load_options`` decorate the shared commands: they add the
load flags and, when one is given, run the load flow instead of (bench) or after (export)
the command's own. Without a load flag the command runs exactly as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, check_output_file, emit_json, show
from parity.errors import BenchError

_BENCH_KEYS = ("concurrency", "processes", "duration", "scenario", "qps", "find_max_qps", "p99_ms")
_EXPORT_KEYS = ("concurrency", "processes", "duration")


def _concurrency_option(help_text: str) -> Callable[..., Any]:
    return click.option("--concurrency", metavar="N[,N...]", help=help_text)


_COMMON = [
    click.option("--processes", is_flag=True,
                 help="With --concurrency: N worker processes (each loads TARGET) instead of N threads."),
    click.option("--duration", metavar="TIME", help="Seconds per level or LoadGen run: 5s, 500ms [default: 5s]."),
]
_BENCH_ONLY = [
    click.option("--scenario", type=click.Choice(("server", "offline")),
                 help="Drive TARGET through MLPerf LoadGen (parity[loadgen]): Poisson arrivals, or all at once."),
    click.option("--qps", type=float, help="--scenario server: mean arrival rate, queries per second."),
    click.option("--find-max-qps", is_flag=True, help="--scenario server: search the highest rate keeping p99 <= --p99-ms."),
    click.option("--p99-ms", type=float, help="The p99 latency bound in milliseconds (with --find-max-qps)."),
]


def _decorate(fn: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


def bench_load_options(command: Callable[..., int]) -> Callable[..., int]:
    """Add the load flags to ``parity bench``; any of them (or a load baseline) runs the load flow."""

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> int:
        load = {k: kwargs.pop(k) for k in _BENCH_KEYS}
        baseline = _load_baseline(kwargs.get("against"))
        if not any(load.values()) and baseline is None:
            return command(**kwargs)
        return run_bench_load(load, baseline, kwargs)

    conc = _concurrency_option("Closed-loop load from N client threads per level, e.g. 1,2,4,8; "
                               "with --scenario, one N: worker threads.")
    return _decorate(wrapper, [conc, *_COMMON, *_BENCH_ONLY])


def export_load_options(command: Callable[..., int]) -> Callable[..., int]:
    """Add ``--concurrency`` to ``parity export``: eager vs artifact under load, after the export."""

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> int:
        load = {k: kwargs.pop(k) for k in _EXPORT_KEYS}
        if not load["concurrency"]:
            if load["processes"] or load["duration"]:
                raise BenchError("--processes and --duration need --concurrency", fix="add --concurrency 1,2,4")
            return command(**kwargs)
        return run_export_load(command, load, kwargs)

    conc = _concurrency_option("With --bench: eager and the artifact under closed-loop load, e.g. 1,2,4.")
    return _decorate(wrapper, [conc, *_COMMON])


# --------------------------------------------------------------------------- bench


def _load_baseline(against: str | None) -> dict[str, Any] | None:
    """The ``--against`` document when it is a load run (read before anything runs)."""
    if against is None:
        return None
    from parity.benchmark.compare import bench_from_file

    doc = bench_from_file(against)
    return doc if isinstance(doc.get("load"), Mapping) else None


def run_bench_load(load: dict[str, Any], baseline: dict[str, Any] | None, opts: dict[str, Any]) -> int:
    """The load flow of ``parity bench``: measure, write, compare, render; the exit code."""
    from parity.cli._progress import progress_for

    _refuse_stage_flags(opts)
    check_output_file(opts.get("output"))
    if baseline is None and opts.get("against"):
        from parity.benchmark.compare import bench_from_file

        bench_from_file(opts["against"])  # readable, but a stage benchmark: say so before running
        raise BenchError(f"{opts['against']} is a stage benchmark, not a load run: they measure different things",
                         fix="drop the load flags, or pass a baseline written by `parity bench --concurrency ... -o FILE`")
    settings = _settings(load, baseline, opts)
    if baseline is not None:
        _check_same_levels(settings, baseline)
    with progress_for(opts.get("as_json", False)) as progress:
        doc = _measure(settings, opts, progress)
    return _finish(doc, baseline, opts)


def _refuse_stage_flags(opts: Mapping[str, Any]) -> None:
    for flag, key in (("--min-time", "min_time"), ("--min-iters", "min_iters")):
        if opts.get(key) is not None:
            raise BenchError(f"{flag} does not apply under load", fix="use --duration to set how long each level runs")


def _settings(load: dict[str, Any], baseline: dict[str, Any] | None, opts: Mapping[str, Any]) -> dict[str, Any]:
    """What to run: the flags given, else the baseline's load."""
    from parity.benchmark.load import (
        DEFAULT_DURATION_S,
        DEFAULT_LEVELS,
        parse_duration,
        parse_levels,
    )

    base_load = (baseline or {}).get("load") or {}
    if base_load and not (load.get("concurrency") or load.get("scenario") or load.get("processes")):
        load = {**load, **_flags_of(base_load)}  # --against alone: the baseline's levels
    scenario = load.get("scenario")
    if not scenario and (load.get("qps") is not None or load.get("find_max_qps") or load.get("p99_ms") is not None):
        raise BenchError("--qps, --find-max-qps and --p99-ms need --scenario server", fix="add --scenario server")
    if scenario and load.get("processes"):
        raise BenchError("--processes applies to --concurrency, not to --scenario", fix="drop --processes")
    levels = parse_levels(load["concurrency"]) if load.get("concurrency") else None
    if scenario and levels is not None and len(levels) != 1:
        raise BenchError(f"--concurrency {load['concurrency']}: with --scenario give one number (worker threads)",
                         fix="pass e.g. --concurrency 2")
    duration = parse_duration(load["duration"]) if load.get("duration") else base_load.get(
        "duration_s", DEFAULT_DURATION_S)
    batch = opts.get("batch_size") or ((baseline or {}).get("batch_size") if baseline else None)
    threads = opts.get("threads") or (((baseline or {}).get("config") or {}).get("threads"))
    return {"scenario": scenario, "levels": levels or (None if scenario else list(DEFAULT_LEVELS)),
            "processes": bool(load.get("processes")), "duration_s": float(duration), "qps": load.get("qps"),
            "find_max": bool(load.get("find_max_qps")), "p99_ms": load.get("p99_ms"), "batch_size": batch,
            "threads": threads}


def _flags_of(base_load: Mapping[str, Any]) -> dict[str, Any]:
    """The load flags that reproduce a baseline's run (when --against is given alone)."""
    if base_load.get("kind") == "concurrency":
        levels = ",".join(str(lv.get("concurrency")) for lv in base_load.get("levels") or [])
        return {"concurrency": levels, "processes": base_load.get("mode") == "processes"}
    level = (base_load.get("levels") or [{}])[0]
    return {"scenario": base_load.get("scenario"), "qps": level.get("qps") if base_load.get("scenario") == "server"
            else None, "concurrency": str(base_load.get("workers") or 1)}


def _check_same_levels(settings: Mapping[str, Any], baseline: Mapping[str, Any]) -> None:
    """Mismatched levels are refused before anything runs, with the flags that match."""
    from parity.benchmark.load import load_flags

    base_load = baseline["load"]
    fix = f"re-run with the baseline's flags: {load_flags(base_load)}"
    if settings["find_max"] or "search" in base_load:
        raise BenchError("a max-QPS search is not compared sample by sample (each run settles on its own rate)",
                         fix=f"compare the max_qps figures, or compare at one rate: {load_flags(base_load)}")
    if settings["scenario"]:
        planned = f"--scenario {settings['scenario']}" + (
            f" --qps {settings['qps']:.4g}" if settings["scenario"] == "server" and settings["qps"] else "")
    else:
        planned = f"--concurrency {','.join(map(str, settings['levels']))}" + (
            " --processes" if settings["processes"] else "")
    if planned != load_flags(base_load):
        raise BenchError(f"{planned} differs from the baseline's {load_flags(base_load)}", fix=fix)


def _measure(settings: Mapping[str, Any], opts: Mapping[str, Any], progress: Any) -> dict[str, Any]:
    if settings["scenario"]:
        from parity.benchmark.loadgen import ScenarioOptions, bench_scenario

        options = ScenarioOptions(
            scenario=settings["scenario"], duration_s=settings["duration_s"], qps=settings["qps"],
            p99_bound_s=settings["p99_ms"] / 1000.0 if settings["p99_ms"] is not None else None,
            find_max=settings["find_max"], workers=(settings["levels"] or [1])[0],
            batch_size=settings["batch_size"], threads=settings["threads"])
        return dict(bench_scenario(opts["target"], opts.get("inputs"), options=options, progress=progress).to_json())
    from parity.benchmark.load import bench_load

    result = bench_load(opts["target"], opts.get("inputs"), levels=settings["levels"],
                        duration_s=settings["duration_s"], processes=settings["processes"],
                        batch_size=settings["batch_size"], threads=settings["threads"], progress=progress)
    return dict(result.to_json())


def _finish(doc: dict[str, Any], baseline: dict[str, Any] | None, opts: Mapping[str, Any]) -> int:
    """Write -o, compare with the baseline, print; exit 1 on a regression."""
    comparison = None
    if baseline is not None:
        from parity.benchmark.compare import compare_bench

        comparison = compare_bench(doc, baseline, opts.get("max_slowdown", 10.0) / 100.0,
                                   force=bool(opts.get("force"))).to_json()
    if opts.get("output"):
        from parity._io import atomic_write_json

        atomic_write_json(opts["output"], doc)
    if opts.get("as_json"):
        emit_json({**doc, "comparison": comparison} if comparison is not None else doc)
    else:
        from parity.report.terminal import bench_comparison_report, load_report

        show(load_report(doc))
        if comparison is not None:
            show(bench_comparison_report(comparison))
    return EXIT_FINDING if comparison is not None and comparison["regression"] else EXIT_OK


# --------------------------------------------------------------------------- export


def run_export_load(command: Callable[..., int], load: dict[str, Any], opts: dict[str, Any]) -> int:
    """``parity export --bench --concurrency``: the export as usual, then both sides under load."""
    import contextlib
    import io
    import json

    from parity.benchmark.load import check_levels, parse_duration, parse_levels
    from parity.exporters.side_by_side import side_by_side_load

    if not opts.get("with_bench"):
        raise BenchError("--concurrency needs --bench: it benchmarks eager and the artifact under load",
                         fix="add --bench")
    levels = check_levels(parse_levels(load["concurrency"]), 1.0)
    duration = parse_duration(load["duration"]) if load["duration"] else 5.0
    if not opts.get("as_json"):
        code = command(**opts)
        side = side_by_side_load(opts["target"], opts["output"], opts.get("inputs"), levels, duration,
                                 bool(load["processes"]))
        from parity.report.terminal import export_load_report

        show(export_load_report(side))
        return code
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = command(**opts)
    doc = json.loads(captured.getvalue())
    side = side_by_side_load(opts["target"], opts["output"], opts.get("inputs"), levels, duration,
                             bool(load["processes"]))
    if isinstance(doc.get("bench"), dict):
        doc["bench"]["load"] = side
    emit_json(doc)
    return code
