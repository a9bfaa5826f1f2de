"""``parity lock SNAPSHOT [-o FILE] [--hashes]``: exact requirements from a snapshot.

Without ``-o`` the lock goes to stdout. Packages that cannot be locked (editable
installs, local directories) are listed on stderr and as comments in the lock; the
exit code stays 0 because the rest of the lock is complete and usable.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from parity.cli._common import EXIT_OK, show


@click.command("lock")
@click.argument("snapshot", metavar="SNAPSHOT")
@click.option(
    "-o",
    "--output",
    "out",
    metavar="FILE",
    help="Write the lock here (atomically) instead of stdout.",
)
@click.option(
    "--hashes", is_flag=True, help="Add --hash lines for the files your pip configuration serves."
)
def command(snapshot: str, out: Optional[str], hashes: bool) -> int:
    """Write an exact, installable lock from a snapshot."""
    from parity.env.lock import lock

    result = lock(snapshot, hashes=hashes, out=out)
    if out is None:
        sys.stdout.write(result.text)  # the lock itself is data, not a report
    if result.warnings or out is not None:
        from parity.report.terminal import lock_report

        show(lock_report(result, written_to=out), stderr=True)
    return EXIT_OK
