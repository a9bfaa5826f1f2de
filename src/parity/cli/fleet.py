"""``parity verify RECORD [TARGET] --ray [ADDRESS]``: verify on every node of a Ray cluster.

Not a command of its own: ``cli/verify.py`` hands over here when ``--ray`` is given,
so nothing imports Ray otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from parity.cli._common import console

#: --ray given without ADDRESS (click's flag_value): a local cluster.
LOCAL = "local"

ray_option = click.option(
    "--ray", "ray", is_flag=False, flag_value=LOCAL, default=None, metavar="[ADDRESS]",
    help="Verify on every alive node of the Ray cluster at ADDRESS (HOST:PORT, ray://HOST:PORT, auto); "
         "without ADDRESS a local cluster is started. RECORD must be reachable from every node. "
         "Put --ray after DIR and TARGET, or write --ray=ADDRESS.")
nodes_option = click.option("--nodes", "nodes", type=click.IntRange(min=1), metavar="N",
                            help="With --ray: only the first N alive nodes (ordered by IP, then node id).")
node_label_option = click.option("--node-label", "node_labels", multiple=True, metavar="KEY=VALUE",
                                 help="With --ray: only nodes carrying this label (repeatable: all must match).")


def check_flags(ray: str | None, nodes: int | None, node_labels: Sequence[str]) -> None:
    """--nodes and --node-label mean nothing without --ray."""
    if ray is None and (nodes is not None or node_labels):
        flag = "--nodes" if nodes is not None else "--node-label"
        raise click.UsageError(f"{flag} needs --ray (it chooses among a Ray cluster's nodes)")


def fleet_command(record: Path, target: str | None, ray: str, nodes: int | None, node_labels: Sequence[str],
                  html: Path | None, as_json: bool, atol: float | None, rtol: float | None,
                  max_slowdown: float | None) -> int:
    """Run the fleet verify, write --html, print JSON or the fleet table; the exit code."""
    from parity.fleet import fleet_verify
    from parity.fleet.cluster import parse_labels

    labels = parse_labels(node_labels)
    with _Progress(quiet=as_json) as progress:
        result = fleet_verify(record, target, address=None if ray == LOCAL else ray, nodes=nodes, labels=labels,
                              atol=atol, rtol=rtol, max_slowdown=max_slowdown, progress=progress)
    from parity.cli.compare import render_result
    from parity.report.terminal.fleet import fleet_report

    return render_result(result, as_json, html, fleet_report)


class _Progress:
    """A spinner on stderr while the nodes verify, one line per node as it finishes."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.status: Any = None

    def __enter__(self) -> _Progress:
        self.err = console(stderr=True)
        self.status = self.err.status("connecting to the Ray cluster")
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.stop()

    def __call__(self, node: Mapping[str, Any]) -> None:
        from parity._text import one_line

        self.status.update("waiting for the other nodes")
        if not self.quiet:
            self.err.print(one_line(f"node {str(node.get('node_id'))[:12]} ({node.get('hostname')}, "
                                    f"{node.get('ip')}): {node.get('verdict')}"), soft_wrap=True, markup=False)
