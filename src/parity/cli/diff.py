"""``parity diff A B``: every difference between two environments, highest risk first."""

from __future__ import annotations

from typing import Optional

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, emit_json, json_option, show


@click.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--requirements", "requirements", type=click.Path(), metavar="FILE",
              help="Also show what this requirements file declared for each package, and whether it allowed the drift.")
@json_option
def command(a: str, b: str, requirements: Optional[str], as_json: bool) -> int:
    """Compare environments A and B (snapshot files, record directories, venv folders, or `current`;
    records and snapshot files on object storage too, as s3://bucket/golden with `parity[s3]`).

    Exit 0 when identical, 1 when they differ, 2 when an input cannot be read.
    """
    from parity.env.differences import diff

    result = diff(a, b, requirements=requirements)
    if as_json:
        emit_json(result.to_json())
    else:
        from parity.report.terminal import diff_report

        show(diff_report(result.to_json()))
    return EXIT_OK if result.identical else EXIT_FINDING

