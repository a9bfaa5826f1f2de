"""What the command modules share: the flags several commands take (one definition
each, so they cannot drift), output helpers (JSON, reports) and the exit codes.

The exit codes are :mod:`parity.errors`'s (re-exported here for the commands).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from parity._io import dumps_json
from parity.errors import EXIT_BUG, EXIT_FINDING, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_BUG", "EXIT_FINDING", "EXIT_OK", "EXIT_USAGE", "atol_option", "batch_size_option",
           "check_output_dir", "check_output_file", "console", "emit_json", "html_option", "inputs_option",
           "json_option", "record_location", "rtol_option", "show", "threads_option"]

F = TypeVar("F", bound=Callable[..., Any])

#: The suffixes ``--inputs`` reads (parity.target.inputs).
INPUT_SUFFIXES = ".txt, .jsonl, .safetensors, .npz"


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout and nothing else there."""
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    """A rich Console (imported lazily: rich costs ~50 ms at import)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def show(renderable: Any, *, stderr: bool = False) -> None:
    """Print a report of :mod:`parity.report.terminal` on stdout (or stderr), soft-wrapped:
    lines a person copies or greps (commands, paths, findings) are never broken by parity,
    prose and tables fit the terminal."""
    console(stderr).print(renderable, soft_wrap=True)


def check_output_file(path: Any) -> None:
    """Refuse an output FILE that cannot be written (a folder, a missing parent) before the
    work, not after it; the atomic write that follows makes the same checks with the same
    words, and catches what only writing shows (/proc, a full disk)."""
    if path is not None:
        from parity._io import _output_parent

        _output_parent(Path(path), want_dir=False)


def check_output_dir(path: Any) -> None:
    """Refuse an output folder whose parent is missing or not a folder, before the work."""
    if path is not None:
        from parity._io import _output_parent

        _output_parent(Path(path), want_dir=True)


class RecordLocation(click.ParamType):
    """A record argument: a local folder (a ``Path``) or a URL of object storage
    (``s3://bucket/golden``, kept as text: ``Path`` would fold its ``//``). Nothing is
    checked here; the record store says what is wrong with it, in one line."""

    name = "record"

    def convert(self, value: Any, param: Any, ctx: Any) -> Path | str:
        from parity._io import is_url, url_text

        if isinstance(value, Path) or not is_url(value):
            return Path(value)
        return url_text(value)


#: ``DIR`` arguments of verify and compare, ``-o`` of record: a folder or a URL
record_location = RecordLocation()


# ------------------------------------------------------------------ shared flags

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")

html_option = click.option("--html", "html", type=click.Path(path_type=Path), metavar="FILE",
                           help="Also write an HTML report to FILE.")

#: Tolerances: the library checks them (finite, >= 0) and names the flag when they are not.
atol_option = click.option("--atol", type=float,
                           help="Absolute tolerance [default: per dtype].")
rtol_option = click.option("--rtol", type=float,
                           help="Relative tolerance [default: per dtype].")

threads_option = click.option("--threads", type=click.IntRange(min=1),
                              help="torch and BLAS threads for the run [default: leave as is].")


def inputs_option(note: str = "[default: the target's example inputs]") -> Callable[[F], F]:
    """``--inputs FILE``; ``note`` says what the command does with it or without it."""
    return click.option("--inputs", type=click.Path(dir_okay=False), metavar="FILE",
                        help=f"Inputs file ({INPUT_SUFFIXES}) {note}.")


def batch_size_option(default: str = "the pipeline's") -> Callable[[F], F]:
    """``--batch-size N`` (1 or more); ``default`` says what it is without the flag."""
    return click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
                        help=f"Items per model call [default: {default}].")
