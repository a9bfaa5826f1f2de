"""Helpers shared by the command modules: JSON output, paths, exit codes."""

from __future__ import annotations

import sys
from typing import Any

import click

from parity._io import dumps_json
from parity.errors import EXIT_BUG, EXIT_FINDING, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_BUG", "EXIT_FINDING", "EXIT_OK", "EXIT_USAGE", "console", "emit_json", "json_option"]


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout and nothing else there."""
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    """A rich Console (imported lazily: rich costs ~50 ms at import)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
