"""One definition per shared flag, one set of exit codes, and commands that only choose a
report and print it (the reports themselves live in parity.report.terminal)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import click
import pytest

import parity.cli as cli_package
import parity.errors
from parity.cli import _common
from parity.cli.main import COMMANDS

SHARED = ("--json", "--html", "--inputs", "--batch-size", "--atol", "--rtol", "--threads")
CLI_DIR = Path(cli_package.__file__).parent


def _options() -> dict[str, list[tuple[str, click.Option]]]:
    """flag -> [(command, option)] over every command."""
    found: dict[str, list[tuple[str, click.Option]]] = {}
    for name, (module, _) in COMMANDS.items():
        command: click.Command = importlib.import_module(module).command
        for param in command.params:
            if isinstance(param, click.Option):
                for flag in param.opts:
                    found.setdefault(flag, []).append((name, param))
    return found


@pytest.mark.parametrize("flag", SHARED)
def test_a_shared_flag_is_the_same_in_every_command(flag: str) -> None:
    uses = _options()[flag]
    assert uses, flag
    first = uses[0][1]
    for command, option in uses:
        assert (option.name, type(option.type), option.is_flag, option.metavar) == \
            (first.name, type(first.type), first.is_flag, first.metavar), (flag, command)


@pytest.mark.parametrize("flag", ["--batch-size", "--threads"])
def test_counts_are_one_or_more_everywhere(flag: str) -> None:
    """--batch-size was a plain int in bench and IntRange(min=1) in record."""
    for command, option in _options()[flag]:
        assert isinstance(option.type, click.IntRange) and option.type.min == 1, command


def test_batch_size_zero_is_a_usage_error_in_bench_as_in_record(run_cli, tmp_path: Path) -> None:
    for command in ("bench", "record"):
        args = ("-o", tmp_path / command) if command == "record" else ()
        code, out, err = run_cli(command, "missing.py:build", "--batch-size", "0", *args)
        assert code == parity.errors.EXIT_USAGE and "--batch-size" in err and "x>=1" in err, (command, err)
        assert out == ""


def test_exit_codes_are_the_errors_modules() -> None:
    for name in ("EXIT_OK", "EXIT_FINDING", "EXIT_USAGE", "EXIT_BUG"):
        assert getattr(_common, name) is getattr(parity.errors, name)
    for path in CLI_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert not {n for n in assigned if n.startswith("EXIT_")}, path.name


#: Modules of cli/ that may build terminal output themselves: progress displays (they draw
#: while the work runs; what they show comes from parity.report.terminal where it is a result).
PROGRESS_MODULES = {"_progress.py", "_common.py"}


def test_commands_do_not_render() -> None:
    """No command module builds rich tables, panels, markup or text, or echoes a result:
    it chooses a report of parity.report.terminal and prints it with show()."""
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name in PROGRESS_MODULES or path.name == "main.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n == "rich" or n.startswith("rich.") for n in names), (path.name, node.lineno)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "echo":
                # one notice on stderr naming the file that runs is allowed; results are not echoed
                assert any(k.arg == "err" for k in node.keywords), (path.name, node.lineno)
