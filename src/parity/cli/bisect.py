"""``parity bisect``: find which package change between two environments breaks the oracle."""

from __future__ import annotations

from typing import Any

import click

from parity.cli._common import EXIT_OK, console, emit_json, json_option, show


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
@click.option("--parallel", "parallel", type=click.IntRange(min=1), metavar="K",
              help="Run up to K trials at once (threads here; Ray tasks with --ray). Same verdicts, culprit and "
                   "trial list as one at a time [default: 1; with --ray, the cluster's CPUs].")
@click.option("--ray", "ray", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Build and judge each trial on a node of the Ray cluster at ADDRESS (without ADDRESS: a local "
                   "cluster). Write --ray=ADDRESS, or put --ray last before `--`.")
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def command(good: str | None, bad: str | None, oracle: str | None, target: str | None, runs: int, narrow: bool, find_links: tuple[str, ...],
            index_url: str | None, extra_index_urls: tuple[str, ...], no_index: bool, cache_dir: str | None,
            cache_max_size: str | None, cache_info: bool, prune: str | None,
            installer: str | None, timeout: float | None, allow_python_mismatch: bool, parallel: int | None,
            ray: str | None, as_json: bool, command: tuple[str, ...]) -> int:
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
                        progress=progress, cache_max_size=cache_max_size, parallel=parallel, ray=ray)
    doc = result.to_json()
    if as_json:
        emit_json(doc)
    else:
        from parity.report.terminal import bisect_report

        show(bisect_report(doc))
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
        doc = cache.prune(folder, max_size, everything=prune == "all").to_json()
    else:
        doc = cache.info(folder, max_size).to_json()
    if as_json:
        emit_json(doc)
    else:
        from parity.report.terminal import cache_report

        show(cache_report(doc))
    return EXIT_OK


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
        from parity.report.terminal import trial_done, trial_started

        if event == "start":
            self.status.update(trial_started(trial.to_json()))
        else:
            self.err.print(trial_done(trial.to_json()), soft_wrap=True)

