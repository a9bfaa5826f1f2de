"""The environment: exact snapshots, ranked diffs, requirements, locks.

``snapshot()`` and ``load_snapshot()`` live in :mod:`parity.env.snapshots`; ``diff()`` in
:mod:`parity.env.differences`; the risk table in :mod:`parity.env.risk`. Nothing here imports
torch at module level: ``parity snapshot`` and ``parity diff`` work without it.
No module is named like a function (``parity.env.snapshot`` is the function, always).
"""

from parity.env.differences import Difference, EnvDiff, diff
from parity.env.snapshots import load_snapshot, snapshot, snapshot_from_python

__all__ = ["Difference", "EnvDiff", "diff", "load_snapshot", "snapshot", "snapshot_from_python"]
