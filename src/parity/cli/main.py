"""Entry point of the ``parity`` console script.

Commands live one per module (``parity.cli.<name>``, each exposing ``command``) and
are imported only when invoked, so ``parity snapshot`` never pays for torch or rich.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from parity._version import __version__
from parity.errors import ParityError

#: command name -> module that defines ``command`` (a click.Command returning an exit code)
COMMANDS: dict[str, tuple[str, str]] = {
    "snapshot": ("parity.cli.snapshot", "Write an exact snapshot of a Python environment."),
    "diff": ("parity.cli.diff", "Compare two environments, ranked by risk."),
    "doctor": ("parity.cli.doctor", "Lint a requirements file against what really ran."),
    "lock": ("parity.cli.lock", "Write an exact, installable lock from a snapshot."),
    "record": ("parity.cli.record", "Record a model's stages and layers (environment A)."),
    "verify": ("parity.cli.verify", "Re-run a model and check it against a record (environment B)."),
    "compare": ("parity.cli.compare", "Compare two records."),
    "bench": ("parity.cli.bench", "Benchmark a model stage by stage."),
    "export": ("parity.cli.export", "Export a model and prove the artifact equals eager."),
    "bisect": ("parity.cli.bisect", "Find which package change breaks parity or speed."),
    "demo": ("parity.cli.demo", "Run the embedded demo and write its reports."),
}

EXIT_OK, EXIT_DIVERGENCE, EXIT_USAGE = 0, 1, 2


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        cmd: click.Command = module.command
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table above so `parity --help` imports nothing else.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="parity")
def cli() -> None:
    """parity: is the model on this machine still the model you benchmarked?

    Exit codes: 0 parity holds, 1 a divergence or regression was found,
    2 the command could not do its job.
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    try:
        rv: Any = cli.main(args=argv, prog_name="parity", standalone_mode=False)
    except ParityError as exc:
        click.echo(f"parity: error: {exc}", err=True)
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if exc.exit_code not in (0, 1) else int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("parity: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("parity: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return int(rv) if isinstance(rv, int) else EXIT_OK


def run() -> None:  # pragma: no cover - console-script shim for `python -m parity`
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
