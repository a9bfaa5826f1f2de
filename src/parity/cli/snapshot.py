"""``parity snapshot``: write an exact snapshot of a Python environment."""

from __future__ import annotations

from typing import Optional

import click

from parity.cli._common import EXIT_OK, emit_json, json_option, show


@click.command("snapshot")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), help="Write the snapshot JSON to FILE.")
@click.option("--python", "python", metavar="PATH", help="Snapshot another interpreter (or venv folder) instead of this one; nothing is installed there.")
@click.option("--runtime", is_flag=True, help="Also import torch there: BLAS/OpenMP libraries, threads, precision flags.")
@json_option
def command(output: Optional[str], python: Optional[str], runtime: bool, as_json: bool) -> int:
    """Write an exact snapshot of a Python environment (schema parity.snapshot/1)."""
    from parity._io import atomic_write_json
    from parity.env.snapshots import snapshot

    snap = snapshot(python=python, runtime=runtime)
    if output:
        atomic_write_json(output, snap)
    if as_json:
        emit_json(snap)
    else:
        from parity.report.terminal import snapshot_report

        show(snapshot_report(snap, output))
    return EXIT_OK

