"""``parity record``: run a target in environment A and write the record B checks against."""

from __future__ import annotations

import click

from parity.cli._common import (
    EXIT_OK,
    batch_size_option,
    emit_json,
    inputs_option,
    json_option,
    show,
)


@click.command("record")
@click.argument("target")
@inputs_option()
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Record directory to write, or a URL such as s3://bucket/golden (parity[s3]).")
@click.option("--capture", type=click.Choice(["outputs", "stats", "full"]), default="stats", show_default=True,
              help="outputs: stages only; stats: per-layer stats and samples; full: every tensor and module inputs.")
@click.option("--layers", "layers", multiple=True, metavar="PATTERN",
              help="With --capture full: store full tensors and replay inputs only for modules whose path "
              "(or an enclosing module's) matches this glob, stats for the rest. Repeatable.")
@batch_size_option()
@click.option("--calibrate", is_flag=True, help="Run again with another thread count to store each layer's noise floor.")
@click.option("--bench", is_flag=True, help="Also store a baseline benchmark (bench.json).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampled positions and torch's RNG.")
@click.option("--overwrite", is_flag=True, help="Replace an existing record directory.")
@click.option("--max-size", metavar="SIZE", help="Stop before the record grows past SIZE (500M, 2G, 1.5GB) "
              "[default: the smaller of 20 GB and the free space minus 1 GB].")
@json_option
def command(target: str, inputs: str | None, output: str, capture: str, batch_size: int | None, calibrate: bool,
            bench: bool, seed: int, overwrite: bool, max_size: str | None, as_json: bool,
            layers: tuple[str, ...] = ()) -> int:
    """Record TARGET's stages and layers into a directory (written atomically).

    TARGET is path/file.py:build, package.module:build, a .pt/.ts/.pt2/.onnx file or a
    local Hugging Face model directory.

    TARGET is code that runs here: a .py file or a module, and a .pt or .pt2 file
    too (loading one unpickles). Pass only targets you trust.
    """
    from parity.cli._progress import progress_for
    from parity.records import record
    from parity.records.budget import parse_size
    from parity.records.store import store_for

    if max_size is not None:
        parse_size(max_size)  # a bad size fails before the model loads
    store_for(output).check_create(output, overwrite=overwrite)  # so does an -o no record store can write
    with progress_for(as_json) as progress:
        result = record(target, inputs=inputs, out=output, capture=capture, batch_size=batch_size,
                        calibrate=calibrate, bench=bench, seed=seed, overwrite=overwrite, max_size=max_size,
                        progress=progress, layers=list(layers) or None)
    doc = result.to_json()
    if as_json:
        emit_json(doc)
    else:
        from parity.report.terminal import record_report

        show(record_report(doc))
    return EXIT_OK

