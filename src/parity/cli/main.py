"""Entry point of the ``parity`` console script.

Commands live one per module (``parity.cli.<name>``, each exposing ``command``) and
are imported only when invoked, so ``parity snapshot`` never pays for torch or rich.

Exit codes (:mod:`parity.errors`): 0 parity holds, 1 a finding, 2 the command could not
do its job (a user error, one line on stderr), 3 a bug in parity (one line on stderr
naming the file that holds the traceback; ``PARITY_DEBUG=1`` prints it too).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import click

from parity._version import __version__
from parity.errors import EXIT_BUG, EXIT_OK, EXIT_USAGE, ParityError

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
    "watch-report": ("parity.cli.watch", "Render the last golden canary of a serving watch."),
}

#: `parity` alone (click >= 8.2 raises this to show the help; older clicks print it themselves)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())

#: Set to 1 to also print the traceback of a bug on stderr.
DEBUG_VAR = "PARITY_DEBUG"
_INTERRUPTED = 130


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

    \b
    Exit codes (every command):
      0  parity holds (nothing found)
      1  a finding: divergence, regression or error-level finding
      2  the command could not do its job (bad input, flag or file)
      3  a bug in parity: the traceback is saved under parity's cache
         (set PARITY_DEBUG=1 to print it); please report it
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; never raises (except SystemExit from a command)."""
    from parity._io import add_stale_hook, remove_stale_hook

    add_stale_hook(_say_stale_removed)
    try:
        return _main(argv)
    finally:
        remove_stale_hook(_say_stale_removed)


def _say_stale_removed(path: Path) -> None:
    from parity._text import one_line

    click.echo(f"parity: removed {one_line(path)}, a temporary left by a parity run that died "
               "(killed, or out of memory)", err=True)


def _main(argv: list[str] | None) -> int:
    try:
        rv: Any = cli.main(args=argv, prog_name="parity", standalone_mode=False)
    except ParityError as exc:
        # Messages quote paths, names and values from files and records: one safe line.
        from parity._text import one_line

        click.echo(f"parity: error: {one_line(exc)}", err=True)
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except _NO_ARGS_IS_HELP as exc:
        exc.show()  # `parity` alone: the help text
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"parity: error: {_click_error_line(exc)}", err=True)
        return EXIT_USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("parity: interrupted", err=True)
        return _INTERRUPTED
    except Exception:  # anything else is parity's own bug
        return report_bug(argv)
    return int(rv) if isinstance(rv, int) else EXIT_OK


def _click_error_line(exc: click.ClickException) -> str:
    """A bad flag or argument as one line (click's own text spans three)."""
    from parity._text import one_line

    message = one_line(exc.format_message()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (fix: see `{ctx.command_path} --help`)"


def report_bug(argv: list[str] | None) -> int:
    """Save the current exception's traceback under the cache and say so in one line."""
    exc = sys.exc_info()[1]
    tb = traceback.format_exc()
    from parity._text import one_line

    what = one_line(f"{type(exc).__name__}: {exc}")[:200]
    if os.environ.get(DEBUG_VAR, "") not in ("", "0"):
        sys.stderr.write(tb)
    try:
        path = _write_crash_file(tb, argv)
    except Exception as err:  # the report must still reach the user
        where = (f"the traceback could not be saved ({one_line(err)[:200]}); rerun with {DEBUG_VAR}=1 "
                 "to see it and include it in a bug report")
    else:
        where = f"the full traceback is in {path}: please attach that file to a bug report"
    click.echo(f"parity: internal error ({what}): this is a bug in parity; {where}", err=True)
    return EXIT_BUG


def crash_dir() -> Path:
    """Where tracebacks of parity's bugs are saved: ``<cache_root>/crash``."""
    from parity._io import cache_root

    return cache_root() / "crash"


def _write_crash_file(tb: str, argv: list[str] | None) -> Path:
    from parity._io import atomic_write_text

    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = folder / f"{stamp}-{os.getpid()}.txt"
    args = sys.argv[1:] if argv is None else argv
    header = (f"parity {__version__} on Python {sys.version.split()[0]} ({sys.platform})\n"
              f"command: parity {' '.join(map(str, args))}\n\n")
    atomic_write_text(path, header + tb)
    return path


class _PipeSafeStdout(io.RawIOBase):
    """File descriptor 1 that survives a reader closing the pipe (``parity ... | head``).

    On the first EPIPE, stdout is pointed at /dev/null (as the Python docs advise for
    SIGPIPE) and the command carries on, so its exit code is the one it would have had.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._fd)
            os.close(devnull)
            return len(data)


def _pipe_safe_stdout() -> None:
    """Replace ``sys.stdout`` by the same text stream over :class:`_PipeSafeStdout`."""
    old = sys.stdout
    try:
        fd = old.fileno()
        old.flush()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (embedded use): leave it alone
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_PipeSafeStdout(fd)), encoding=old.encoding,
                                  errors=old.errors, line_buffering=bool(getattr(old, "line_buffering", False)))


def run() -> None:
    """Console-script entry point and ``python -m parity``."""
    _pipe_safe_stdout()
    code = main()
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
