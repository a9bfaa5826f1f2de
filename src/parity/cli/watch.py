"""``parity watch-report DIR``: the last golden canary of a running watch, as the usual report."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli._common import check_output_file, json_option


@click.command("watch-report")
@click.argument("state_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--html", "html", type=click.Path(path_type=Path), metavar="FILE",
              help="Write the HTML report to FILE [default: DIR/last-canary.html].")
@json_option
@click.option("--failure", is_flag=True, help="Report the last failing canary instead of the last one.")
def command(state_dir: Path, html: Path | None, as_json: bool, failure: bool) -> int:
    """Render the last golden canary of the watch whose state folder is DIR.

    DIR is the watch's state_dir (see its /parity/status or Watch.status()). The report is
    the one `parity verify` gives: verdict, probable cause, stages, layers.

    Exit 0 PASS or PASS-with-warnings, 1 FAIL, 2 no canary result in DIR.
    """
    from parity.cli.compare import render_result
    from parity.watch.state import read_canary

    report = read_canary(state_dir, failure=failure)
    if html is None:
        html = state_dir / ("last-failure.html" if failure else "last-canary.html")
    check_output_file(html)
    if not as_json and report.status:
        _say_when(report.status)
    return render_result(report, as_json, html)


def _say_when(status: dict[str, object]) -> None:
    from parity._text import one_line

    last = status.get("last_canary")
    when = last.get("time") if isinstance(last, dict) else None
    click.echo(one_line(f"watch {status.get('watch')}: golden canary of {when}, golden record "
                        f"{status.get('golden')}"), err=True)
