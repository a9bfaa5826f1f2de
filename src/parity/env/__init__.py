"""The environment: exact snapshots, ranked diffs, requirements, locks.

``snapshot()`` and ``load_snapshot()`` live in :mod:`parity.env.snapshot`; ``diff()`` in
:mod:`parity.env.diff`; the risk table in :mod:`parity.env.risk`. Nothing here imports
torch at module level: ``parity snapshot`` and ``parity diff`` work without it.

Note: the functions ``snapshot`` and ``diff`` shadow their modules as attributes of this
package; import module members with ``from parity.env.snapshot import X``.
"""

from parity.env.diff import Difference, EnvDiff, diff
from parity.env.snapshot import load_snapshot, snapshot, snapshot_from_python

__all__ = ["Difference", "EnvDiff", "diff", "load_snapshot", "snapshot", "snapshot_from_python"]
