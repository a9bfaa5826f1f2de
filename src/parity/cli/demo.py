"""``parity demo [-o DIR]``: record the embedded model, re-run it under labelled drifts,
write one HTML report per drift plus an index page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, console, emit_json, json_option

_STYLE = {"PASS": "bold green", "FAIL": "bold red", "PASS-with-warnings": "bold yellow"}


@click.command(name="demo", help="Run the embedded demo (no download) and write its HTML reports to DIR. "
               "Exit 0 when every scenario gets the verdict it should, 1 otherwise.")
@click.option("-o", "--output", "out_dir", default="parity-demo", show_default=True,
              type=click.Path(path_type=Path),
              help="Folder for the reference record and the reports (an earlier demo there is replaced).")
@json_option
def command(out_dir: Path, as_json: bool) -> int:
    from parity.demo import run_demo

    err = console(stderr=True)
    result = run_demo(out_dir, progress=lambda line: err.print(f"[dim]parity demo: {_escape(line)}[/dim]"))
    if as_json:
        emit_json(result.to_json())
    else:
        _render(result)
    return EXIT_OK if result.ok else EXIT_FINDING


def _render(result: Any) -> None:
    out = console()
    out.soft_wrap = True  # long reasons and paths stay on one line (readable when piped)
    out.print(f"\n[bold]parity demo[/bold]: {len(result.scenarios)} scenarios against the reference "
              f"recorded in {_escape(str(result.reference))} ({result.seconds:.1f} s)\n")
    for s in result.scenarios:
        style = _STYLE.get(s.verdict, "bold")
        flag = "" if s.as_expected else f"  [bold red](expected {s.expected})[/bold red]"
        out.print(f"  [{style}]{s.verdict:<18}[/{style}] {_escape(s.title)}{flag}")
        out.print(f"  {'':<18} {_escape(s.reason)}")
        out.print(f"  {'':<18} [dim]report: {_escape(str(s.report))}[/dim]")
    out.print(f"\nAll reports: {_escape(str(result.index))}")
    if not result.ok:
        out.print("[bold red]Some verdicts differ from what the demo expects: this environment behaves unusually.[/bold red]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
