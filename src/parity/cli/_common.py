"""Helpers shared by the command modules: JSON output, paths, exit codes."""

from __future__ import annotations

import sys
from typing import Any

import click

from parity._io import dumps_json
from parity.errors import EXIT_BUG, EXIT_FINDING, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_BUG", "EXIT_FINDING", "EXIT_OK", "EXIT_USAGE", "check_output_dir", "check_output_file", "console",
           "emit_json", "json_option"]


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout and nothing else there."""
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    """A rich Console (imported lazily: rich costs ~50 ms at import)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def check_output_file(path: Any) -> None:
    """Refuse an output FILE that cannot be written (a folder, a missing parent) before the
    work, not after it; the atomic write that follows makes the same checks with the same
    words, and catches what only writing shows (/proc, a full disk)."""
    if path is not None:
        from pathlib import Path

        from parity._io import _output_parent

        _output_parent(Path(path), want_dir=False)


def check_output_dir(path: Any) -> None:
    """Refuse an output folder whose parent is missing or not a folder, before the work."""
    if path is not None:
        from pathlib import Path

        from parity._io import _output_parent

        _output_parent(Path(path), want_dir=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
