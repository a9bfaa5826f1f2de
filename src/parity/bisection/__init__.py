"""parity.bisection: which package change between a good and a bad environment breaks parity.

``bisect(good, bad, oracle)`` computes the changed set (:mod:`.changes`), builds trial
environments that overlay bad-side packages on the good interpreter (:mod:`.trials`),
judges them with an oracle command (:mod:`.oracle`) and searches with delta debugging
(:mod:`.ddmin`), optionally narrowing a culprit to its first bad release.
"""

from parity.bisection.changes import Change, changes_between
from parity.bisection.ddmin import Verdict
from parity.bisection.oracle import CommandOracle, Oracle
from parity.bisection.search import BisectResult, Trial, bisect
from parity.bisection.trials import IndexOptions

__all__ = [
    "BisectResult",
    "Change",
    "CommandOracle",
    "IndexOptions",
    "Oracle",
    "Trial",
    "Verdict",
    "bisect",
    "changes_between",
]
