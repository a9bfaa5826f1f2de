"""``parity verify DIR [TARGET]``: re-run a model here and check it against A's record."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli._common import (
    atol_option,
    check_output_file,
    html_option,
    json_option,
    record_location,
    rtol_option,
)
from parity.cli._runner import verify_runner_option
from parity.cli.compare import render_result
from parity.cli.fleet import check_flags, fleet_command, node_label_option, nodes_option, ray_option


@click.command("verify")
@click.argument("record_dir", metavar="DIR", type=record_location)  # a folder or s3://... (parity[s3])
@click.argument("target", required=False)
@verify_runner_option  # --runner cpp: cli/_runner.py
@html_option
@json_option
@atol_option
@rtol_option
@click.option("--max-slowdown", "max_slowdown", type=float, metavar="PCT",
              help="Fail when B is more than PCT percent slower than A's baseline (needs `record --bench`).")
@ray_option  # --ray, --nodes, --node-label: cli/fleet.py
@nodes_option
@node_label_option
def command(record_dir: Path, target: str | None, html: Path | None, as_json: bool, atol: float | None,
            rtol: float | None, max_slowdown: float | None, ray: str | None = None, nodes: int | None = None,
            node_labels: tuple[str, ...] = ()) -> int:
    """Re-run TARGET on A's inputs and compare with the record DIR.

    Without TARGET, the recorded one runs only when it is a relative file.py:function
    in this folder (outside DIR); any other recorded target needs TARGET.

    TARGET is code that runs here: a .py file or a module, and a .pt or .pt2 file
    too (loading one unpickles). Pass only targets you trust.

    Exit 0 PASS or PASS-with-warnings, 1 FAIL, 2 could not verify, 3 a bug in parity.
    """
    from parity.comparison import verify

    if max_slowdown is not None and max_slowdown < 0:
        raise click.BadParameter(f"{max_slowdown}: must be >= 0 (a percentage, e.g. 10)", param_hint="--max-slowdown")
    from parity.cli._progress import progress_for

    check_output_file(html)
    check_flags(ray, nodes, node_labels)
    if ray is not None:
        return fleet_command(record_dir, target, ray, nodes, node_labels, html, as_json, atol, rtol,
                             None if max_slowdown is None else max_slowdown / 100.0)
    if target is None:
        _announce_recorded_target(record_dir)
    with progress_for(as_json) as progress:
        result = verify(record_dir, target, atol=atol, rtol=rtol,
                        max_slowdown=None if max_slowdown is None else max_slowdown / 100.0, progress=progress)
    return render_result(result, as_json, html)


def _announce_recorded_target(record_dir: Path) -> None:
    """Say on stderr which file runs when TARGET comes from the record. A recorded target
    parity may not run is refused by verify() itself, after the record's own checks."""
    from parity.errors import ParityError
    from parity.target.policy import target_of_record

    try:
        chosen = target_of_record(record_dir)
    except ParityError:
        return
    click.echo(chosen.describe(), err=True)
