"""``parity export``: write a Python-free artifact and prove it equals eager."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from parity.cli._common import EXIT_FINDING, EXIT_OK, console, emit_json, json_option
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
@click.option("--inputs", type=click.Path(dir_okay=False),
              help="Inputs file (.txt, .jsonl, .safetensors, .npz); the first batch is the export example.")
@click.option("--no-check", is_flag=True, help="Skip the parity check against eager.")
@click.option("--bench", "with_bench", is_flag=True, help="Benchmark eager and the artifact side by side.")
@click.option("--atol", type=float, help="Absolute tolerance [default: per dtype].")
@click.option("--rtol", type=float, help="Relative tolerance [default: per dtype].")
@json_option
def command(target: str, fmt: str, output: str, method: str, static: bool, inputs: str | None,
            no_check: bool, with_bench: bool, atol: float | None, rtol: float | None, as_json: bool) -> int:
    """Export TARGET and check the artifact against eager on other batch sizes and lengths.

    Exit 1 when the parity check fails, 2 when the model cannot be exported.

    TARGET is code that runs here: a .py file or a module, and a .pt or .pt2 file
    too (loading one unpickles). Pass only targets you trust.
    """
    from parity.exporters import export

    result = export(target, fmt, output, method=method, static=static, inputs=inputs, check=not no_check,
                    bench=with_bench, atol=atol, rtol=rtol)
    doc = result.to_json()
    if as_json:
        emit_json(doc)
    else:
        _render(doc)
    return EXIT_OK if result.ok else EXIT_FINDING


def _render(doc: dict[str, Any]) -> None:
    out = console()
    verdict = "[green]PASS[/]" if doc["ok"] else "[red]FAIL[/]"
    out.print(f"{verdict} {doc['format']} artifact {doc['out']} ({doc['size_bytes'] / 1e6:.1f} MB, "
              f"exported in {doc['export_seconds']:.1f} s)")
    out.print(f"inputs {', '.join(doc['input_names'])}; dynamic: {_dynamic(doc['dynamic'])}")
    for f in doc["findings"]:
        colour = {"error": "red", "warning": "yellow"}.get(f["severity"], "blue")
        out.print(f"[{colour}]{f['severity']}[/] {f['message']}", highlight=False)
    if doc["check"] is not None:
        _render_check(out, doc["check"])
    if doc["bench"] is not None:
        _render_bench(out, doc["bench"])


def _dynamic(dynamic: dict[str, dict[str, str]]) -> str:
    parts = [f"{name}[{','.join(f'{d}:{label}' for d, label in dims.items())}]" for name, dims in dynamic.items()]
    return " ".join(parts) or "none (static shapes)"


def _render_check(out: Any, check: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="parity check: eager vs artifact")
    for col in ("case", "shapes", "result", "max abs", "worst output"):
        table.add_column(col)
    for case in check["cases"]:
        worst = max(case["outputs"], key=lambda o: o["metrics"]["max_abs"] or 0.0, default=None)
        result = "[green]ok[/]" if case["ok"] else f"[red]{case['error'] or 'diverged'}[/]"
        if case.get("skipped"):
            result = f"[yellow]skipped: {case['skipped']}[/]"
        table.add_row(case["label"], _shapes(case["shapes"]), result,
                      f"{worst['metrics']['max_abs']:.2e}" if worst and worst["metrics"]["max_abs"] is not None else "-",
                      worst["name"] if worst else "-")
    out.print(table)
    tol = check.get("tolerance") or {}
    out.print(f"tolerances: {tol.get('basis', 'per dtype')}")
    subs = check["submodules"]
    if subs:
        diverged = [s["module"] for s in subs if s["status"] == "diverged"]
        out.print(f"submodules compared: {check['submodules_compared']} of {len(subs)}; "
                  f"diverged: {', '.join(diverged[:5]) or 'none'}")


def _shapes(shapes: dict[str, list[int]]) -> str:
    """Inputs grouped by shape: token inputs usually share one."""
    groups: dict[str, list[str]] = {}
    for name, shape in shapes.items():
        groups.setdefault("x".join(map(str, shape)), []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{s} ({', '.join(n)})" for s, n in groups.items())


def _render_bench(out: Any, bench: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"eager vs artifact, batch {bench['batch_size']} (model stage)")
    for col in ("", "p50 ms", "p99 ms", "items/s", "load s", "peak RSS MB", "file MB"):
        table.add_column(col)
    for side in (bench["eager"], bench["artifact"]):
        table.add_row(side["label"], f"{side['p50'] * 1e3:.2f}", f"{side['p99'] * 1e3:.2f}",
                      _num(side["items_per_s"], ".1f"), _num(side["load_seconds"], ".2f"),
                      _num(side["peak_rss_bytes"] and side["peak_rss_bytes"] / 1e6, ".0f"),
                      _num(side["file_bytes"] and side["file_bytes"] / 1e6, ".1f"))
    out.print(table)
    low, high = bench["ratio_ci"]
    out.print(f"time ratio artifact/eager {bench['ratio']:.2f} (95% CI {low:.2f}-{high:.2f}): {bench['verdict']}")


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)
