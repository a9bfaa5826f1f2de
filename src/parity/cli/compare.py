"""``parity compare DIR_A DIR_B``: compare two records, A the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from parity.cli._common import (
    check_output_file,
    emit_json,
    html_option,
    json_option,
    record_location,
    show,
)


@click.command("compare")
@click.argument("dir_a", metavar="DIR_A", type=record_location)
@click.argument("dir_b", metavar="DIR_B", type=record_location)
@html_option
@json_option
def command(dir_a: Path | str, dir_b: Path | str, html: Path | None, as_json: bool) -> int:
    """Compare record DIR_B against the reference record DIR_A (folders, or URLs such
    as s3://bucket/golden with `parity[s3]`).

    Exit 0 PASS or PASS-with-warnings, 1 FAIL, 2 could not compare.
    """
    from parity.comparison import compare

    check_output_file(html)
    return render_result(compare(dir_a, dir_b), as_json, html)


def render_result(result: Any, as_json: bool, html: Path | None, renderer: Any = None) -> int:
    """Write the HTML report if asked, print JSON or the rich report (``renderer``, by
    default the verify report); return the exit code."""
    doc = result.to_json()
    if html is not None:
        from parity._io import atomic_write_text
        from parity.report.html import render_html

        atomic_write_text(html, render_html(doc))
    if as_json:
        emit_json(doc)
    else:
        from parity.report.terminal import verify_report

        show((renderer or verify_report)(doc, html=html))
    return int(result.exit_code)
