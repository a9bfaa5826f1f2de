"""``parity export``: write a Python-free artifact and prove it equals eager."""

from __future__ import annotations

from collections.abc import Sequence

import click

from parity.cli._common import (
    EXIT_FINDING,
    EXIT_OK,
    atol_option,
    emit_json,
    inputs_option,
    json_option,
    rtol_option,
    show,
)
from parity.cli._load import export_load_options
from parity.cli._runner import (
    check_cpp_option,
    check_cpp_report,
    export_check_cpp,
    prepare_check_cpp,
)
from parity.target.formats import all_formats, names


class FormatChoice(click.Choice):  # type: ignore[type-arg]
    """``--format``: the registered artifact formats, read from the registry at parse time."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        return names()

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        """click sets the choices once; the registry stays the source."""


@click.command("export")
@click.argument("target")
@click.option("--format", "fmt", required=True, type=FormatChoice(),
              help=", ".join(f.help() for f in all_formats()) + ".")
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact file to write.")
@click.option("--method", type=click.Choice(("trace", "script")), default="trace", show_default=True,
              help="TorchScript only: trace one run, or script the Python code.")
@click.option("--static", is_flag=True, help="Fix every input shape to the example's (no dynamic batch/sequence).")
@inputs_option("[default: the target's example inputs]; the first batch is the export example")
@click.option("--no-check", is_flag=True, help="Skip the parity check against eager.")
@click.option("--bench", "with_bench", is_flag=True, help="Benchmark eager and the artifact side by side.")
@check_cpp_option
@atol_option
@rtol_option
@json_option
@export_load_options  # --concurrency with --bench: cli/_load.py
def command(target: str, fmt: str, output: str, method: str, static: bool, inputs: str | None,
            no_check: bool, with_bench: bool, check_cpp: bool, atol: float | None, rtol: float | None,
            as_json: bool) -> int:
    """Export TARGET and check the artifact against eager on other batch sizes and lengths.

    Exit 1 when the parity check fails, 2 when the model cannot be exported.

    TARGET is code that runs here: a .py file or a module, and a .pt or .pt2 file
    too (loading one unpickles). Pass only targets you trust.
    """
    from parity.cli._progress import progress_for
    from parity.exporters import export

    with progress_for(as_json) as progress:
        if check_cpp:
            prepare_check_cpp(fmt, progress)  # before the export: the format and a compiler
        result = export(target, fmt, output, method=method, static=static, inputs=inputs, check=not no_check,
                        bench=with_bench, atol=atol, rtol=rtol, progress=progress)
    doc = result.to_json()
    if check_cpp:  # the artifact again, in parity's C++ runner (no Python): cli/_runner.py
        with progress_for(as_json) as progress:
            export_check_cpp(doc, target, inputs, atol, rtol, progress)
    if as_json:
        emit_json(doc)
    else:
        from parity.report.terminal import export_report

        show(export_report(doc))
        if doc.get("check_cpp"):
            show(check_cpp_report(doc["check_cpp"]))
    return EXIT_OK if doc["ok"] else EXIT_FINDING

