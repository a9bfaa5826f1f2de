"""``parity bisect``: find which package change between two environments breaks the oracle."""

from __future__ import annotations

from typing import Any

import click

from parity.cli._common import EXIT_OK, console, emit_json, json_option


@click.command("bisect", context_settings={"allow_interspersed_args": False})
@click.option("--good", "good", metavar="A", help="Good side: a snapshot file or a record directory.")
@click.option("--bad", "bad", metavar="B", help="Bad side: a snapshot file or a record directory.")
@click.option("--oracle", "oracle", metavar="SPEC", help="verify:RECORD_DIR or bench:BASELINE [default: verify on the side that is a record, --good first].")
@click.option("--target", "target", metavar="TARGET",
              help="TARGET for --oracle verify/bench [default: the recorded one, only when it is a relative "
                   "file.py:function in this folder, outside the record]. TARGET is code: .pt/.pt2 files unpickle.")
@click.option("--runs", type=int, default=1, metavar="K", show_default=True, help="Oracle runs per trial; the majority decides.")
@click.option("--narrow", is_flag=True, help="Then bisect the culprit's releases between its good and bad versions.")
@click.option("--find-links", "find_links", multiple=True, metavar="DIR", help="Folder or URL of wheels, passed to uv/pip (repeatable).")
@click.option("--index-url", metavar="URL", help="Package index passed to uv/pip [default: your uv/pip configuration].")
@click.option("--extra-index-url", "extra_index_urls", multiple=True, metavar="URL", help="Extra package index (repeatable).")
@click.option("--no-index", is_flag=True, help="Use only --find-links folders.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Trial environments cache [default: ~/.cache/parity/bisect].")
@click.option("--cache-max-size", "cache_max_size", metavar="SIZE",
              help="Size limit of the trial cache, e.g. 10G or 500M; least recently used trials are removed "
                   "[default: $PARITY_BISECT_CACHE_MAX, else the smaller of 10 GB and half the free space].")
@click.option("--cache-info", "cache_info", is_flag=True, help="Show the trial cache (location, entries, sizes, limit) and exit.")
@click.option("--prune", "prune", is_flag=False, flag_value="limit", metavar="[all]",
              help="Remove least recently used trials until the cache fits its limit (`--prune all`: everything), and exit.")
@click.option("--installer", type=click.Choice(["uv", "pip"]), help="Tool that builds trials [default: uv when found].")
@click.option("--timeout", type=float, metavar="SECONDS", help="Seconds per oracle run before it counts as 'could not judge'.")
@click.option("--allow-python-mismatch", is_flag=True, help="Bisect even when the two sides ran different Python versions.")
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def command(good: str | None, bad: str | None, oracle: str | None, target: str | None, runs: int, narrow: bool, find_links: tuple[str, ...],
            index_url: str | None, extra_index_urls: tuple[str, ...], no_index: bool, cache_dir: str | None,
            cache_max_size: str | None, cache_info: bool, prune: str | None,
            installer: str | None, timeout: float | None, allow_python_mismatch: bool, as_json: bool,
            command: tuple[str, ...]) -> int:
    """Find which package change between --good and --bad breaks parity or speed.

    The oracle is `parity verify`, `parity bench --against`, or COMMAND after `--`,
    run in each trial environment: exit 0 good, 1 bad, anything else "could not
    judge" (never blamed). Exit 1 when a culprit is found, 0 when the sides do not
    differ, 2 when the bisect could not conclude.

    Trial environments are cached (see --cache-info) within --cache-max-size.
    """
    from parity.bisection import IndexOptions, bisect
    from parity.bisection.oracle import oracle_from_spec

    if cache_info or prune:
        return _cache_command(cache_dir, cache_max_size, prune, as_json)
    for flag, value in (("--good", good), ("--bad", bad)):
        if not value:
            raise click.UsageError(f"missing option {flag}: bisect needs --good A and --bad B")
    assert good is not None and bad is not None
    resolved = oracle_from_spec(oracle, command, good, bad, target)
    chosen = getattr(resolved, "chosen", None)
    if chosen is not None:
        click.echo(chosen.describe(), err=True)  # which file runs, when the record named it
    index = IndexOptions(tuple(find_links), index_url, tuple(extra_index_urls), no_index)
    with _Progress() as progress:
        result = bisect(good, bad, resolved, (), runs=runs, narrow=narrow, index=index, cache_dir=cache_dir,
                        allow_python_mismatch=allow_python_mismatch, installer=installer, timeout=timeout,
                        progress=progress, cache_max_size=cache_max_size)
    doc = result.to_json()
    if as_json:
        emit_json(doc)
    else:
        _render(doc)
    return result.exit_code


def _cache_command(cache_dir: str | None, max_size: str | None, prune: str | None, as_json: bool) -> int:
    """``--cache-info`` and ``--prune [all]``."""
    from pathlib import Path

    from parity.bisection import cache
    from parity.bisection.trials import default_cache_dir

    if prune not in (None, "limit", "all"):
        raise click.BadParameter(f"{prune}: --prune takes no value or `all`", param_hint="--prune")
    folder = Path(cache_dir).resolve() if cache_dir else default_cache_dir()
    if prune:
        result = cache.prune(folder, max_size, everything=prune == "all")
        doc, shown = result.to_json(), result.info
    else:
        shown = cache.info(folder, max_size)
        doc = shown.to_json()
    if as_json:
        emit_json(doc)
        return EXIT_OK
    out = console()
    if prune:
        out.print(f"removed {len(doc['removed'])} entries, {cache.format_size(doc['freed_bytes'])} freed",
                  markup=False)
    if shown.entries:
        out.print(_cache_table(shown))
    out.print(f"{shown.path}: {len(shown.entries)} entries, {cache.format_size(shown.total)} "
              f"(limit {cache.format_size(shown.limit)}, {shown.limit_source})", markup=False)
    return EXIT_OK


def _cache_table(shown: Any) -> Any:
    from rich.table import Table

    from parity._text import one_line
    from parity.bisection.cache import format_size

    table = Table("entry", "kind", "size", "last used (UTC)", title="bisect trial cache, least recently used first")
    for entry in shown.entries:
        doc = entry.to_json()
        table.add_row(one_line(doc["name"]), doc["kind"], format_size(doc["bytes"]), doc["last_used"])
    return table


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
