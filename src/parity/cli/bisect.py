"""``parity bisect``: find which package change between two environments breaks the oracle."""

from __future__ import annotations

from typing import Any

import click

from parity.cli._common import console, emit_json, json_option


@click.command("bisect", context_settings={"allow_interspersed_args": False})
@click.option("--good", "good", required=True, metavar="A", help="Good side: a snapshot file or a record directory.")
@click.option("--bad", "bad", required=True, metavar="B", help="Bad side: a snapshot file or a record directory.")
@click.option("--oracle", "oracle", metavar="SPEC", help="verify:RECORD_DIR or bench:BASELINE [default: verify on the side that is a record, --good first].")
@click.option("--runs", type=int, default=1, metavar="K", show_default=True, help="Oracle runs per trial; the majority decides.")
@click.option("--narrow", is_flag=True, help="Then bisect the culprit's releases between its good and bad versions.")
@click.option("--find-links", "find_links", multiple=True, metavar="DIR", help="Folder or URL of wheels, passed to uv/pip (repeatable).")
@click.option("--index-url", metavar="URL", help="Package index passed to uv/pip [default: your uv/pip configuration].")
@click.option("--extra-index-url", "extra_index_urls", multiple=True, metavar="URL", help="Extra package index (repeatable).")
@click.option("--no-index", is_flag=True, help="Use only --find-links folders.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Trial environments cache [default: ~/.cache/parity/bisect].")
@click.option("--installer", type=click.Choice(["uv", "pip"]), help="Tool that builds trials [default: uv when found].")
@click.option("--timeout", type=float, metavar="SECONDS", help="Seconds per oracle run before it counts as 'could not judge'.")
@click.option("--allow-python-mismatch", is_flag=True, help="Bisect even when the two sides ran different Python versions.")
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def command(good: str, bad: str, oracle: str | None, runs: int, narrow: bool, find_links: tuple[str, ...],
            index_url: str | None, extra_index_urls: tuple[str, ...], no_index: bool, cache_dir: str | None,
            installer: str | None, timeout: float | None, allow_python_mismatch: bool, as_json: bool,
            command: tuple[str, ...]) -> int:
    """Find which package change between --good and --bad breaks parity or speed.

    The oracle is `parity verify`, `parity bench --against`, or COMMAND after `--`,
    run in each trial environment: exit 0 good, 1 bad, anything else "could not
    judge" (never blamed). Exit 1 when a culprit is found, 0 when the sides do not
    differ, 2 when the bisect could not conclude.
    """
    from parity.bisection import IndexOptions, bisect

    index = IndexOptions(tuple(find_links), index_url, tuple(extra_index_urls), no_index)
    with _Progress() as progress:
        result = bisect(good, bad, oracle, command, runs=runs, narrow=narrow, index=index, cache_dir=cache_dir,
                        allow_python_mismatch=allow_python_mismatch, installer=installer, timeout=timeout,
                        progress=progress)
    doc = result.to_json()
    if as_json:
        emit_json(doc)
    else:
        _render(doc)
    return result.exit_code


class _Progress:
    """A spinner on stderr while a trial runs, and one line per finished trial."""

    def __enter__(self) -> _Progress:
        self.err = console(stderr=True)
        self.status = self.err.status("preparing the bisect")
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.stop()

    def __call__(self, event: str, trial: Any) -> None:
        taken = _short(trial.bad_side)
        if event == "start":
            self.status.update(f"trial {trial.index} ({trial.stage}): bad side = {taken}")
            return
        verdict = trial.verdict.value if trial.verdict else "?"
        self.err.print(f"trial {trial.index:>3} {trial.stage:<6} {trial.mode:<7} {verdict:<8} "
                       f"{trial.seconds:6.2f}s  bad side = {taken}")


def _short(names: list[str], limit: int = 4) -> str:
    if not names:
        return "(none: the good environment)"
    shown = ", ".join(names[:limit])
    return shown + (f" +{len(names) - limit} more" if len(names) > limit else "")


def _render(doc: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    for warning in doc["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"[bold]{doc['status']}[/]: {doc['reason']}")
    if doc["culprits"]:
        table = Table("culprit", "good", "bad", "change", title=f"{len(doc['changes'])} changes, {doc['n_trials']} trials")
        for c in doc["culprits"]:
            table.add_row(c["name"], c["good"] or "(absent)", c["bad"] or "(absent)", c["change"])
        out.print(table)
    elif doc["suspects"]:
        out.print("still suspected: " + ", ".join(s["name"] for s in doc["suspects"]))
    for n in doc["narrowed"]:
        out.print(_narrow_line(n))
    if doc["trials"]:
        out.print(_trials_table(doc["trials"]))
    if doc["reproduce"]:
        out.print(f"reproduce trial {doc['decisive_trial']}:")
        out.print(doc["reproduce"], markup=False, highlight=False, soft_wrap=True)


def _narrow_line(n: dict[str, Any]) -> str:
    if n["status"] in ("exact", "adjacent"):
        return f"{n['name']}: first bad release {n['first_bad']} (last good {n['last_good']})"
    if n["status"] == "range":
        return (f"{n['name']}: first bad release is {n['first_bad']} or one of the untestable "
                f"{', '.join(n['skipped'])} (last good {n['last_good']})")
    return f"{n['name']}: {n['reason']}"


def _trials_table(trials: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("#", "stage", "bad side", "mode", "verdict", "seconds")
    for t in trials:
        mode = t["mode"] + (f" ({t['why_venv']})" if t["why_venv"] else "") + (" cached" if t["cached"] else "")
        verdict = t["verdict"] + (f": {t['note']}" if t["note"] else "")
        taken = ", ".join(t["bad_side"]) or "(none: the good environment)"
        table.add_row(str(t["index"]), t["stage"], taken, mode, verdict, f"{t['seconds']:.2f}")
    return table
