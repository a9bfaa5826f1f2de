"""``parity doctor REQUIREMENTS [--snapshot FILE] [--check-index] [--json]``.

Exit 1 when any finding is an error, 0 otherwise, 2 when the file cannot be read.
"""

from __future__ import annotations

from typing import Optional

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, emit_json, json_option, show


@click.command("doctor")
@click.argument("requirements", metavar="REQUIREMENTS")
@click.option(
    "--snapshot",
    metavar="FILE",
    help="Snapshot (or record dir, or 'current') of the environment that really ran.",
)
@click.option(
    "--check-index",
    is_flag=True,
    help="Ask pip whether the configured index still serves each exact pin.",
)
@json_option
def command(requirements: str, snapshot: Optional[str], check_index: bool, as_json: bool) -> int:
    """Lint a requirements file against what really ran."""
    from parity.env.doctor import doctor

    report = doctor(requirements, snapshot=snapshot, check_index=check_index)
    if as_json:
        emit_json(report.to_json())
    else:
        from parity.report.terminal import doctor_report

        show(doctor_report(report.to_json()))
    return EXIT_OK if report.ok else EXIT_FINDING

