"""``parity demo [-o DIR]``: record the embedded model, re-run it under labelled drifts,
write one HTML report per drift plus an index page."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, emit_json, json_option, show


@click.command(name="demo", help="Run the embedded demo (no download) and write its HTML reports to DIR. "
               "Exit 0 when every scenario gets the verdict it should, 1 otherwise.")
@click.option("-o", "--output", "out_dir", default="parity-demo", show_default=True,
              type=click.Path(path_type=Path),
              help="Folder for the reference record and the reports (an earlier demo there is replaced).")
@json_option
def command(out_dir: Path, as_json: bool) -> int:
    from parity.demo import run_demo
    from parity.report.terminal import demo_progress, demo_report

    result = run_demo(out_dir, progress=lambda line: show(demo_progress(line), stderr=True))
    if as_json:
        emit_json(result.to_json())
    else:
        show(demo_report(result.to_json()))
    return EXIT_OK if result.ok else EXIT_FINDING

