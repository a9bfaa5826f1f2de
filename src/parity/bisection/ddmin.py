"""The search algorithms, pure: no processes, no files, only a ``test`` callback.

Two searches live here:

- :func:`minimize`: delta debugging over a changed set. Finds a 1-minimal set of
  changes that breaks the oracle (a single culprit, or a pair that only breaks
  together).
- :func:`first_bad`: bisection over an ordered list of releases, skipping the ones
  that cannot be judged (uninstallable, oracle crash), as ``git bisect skip`` does.

Both treat a verdict other than GOOD/BAD as "could not judge": such a trial is never
blamed; when it hides the answer, the result says which candidates remain.

:func:`speculate` lets a caller run several trials at once without changing either
search: it proposes the trials the search may ask for next (its decision tree, breadth
first), and the search still consumes verdicts one by one, in its own order.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Verdict(str, enum.Enum):
    """What a trial said. SKIP: the trial environment could not be built;
    UNJUDGED: the oracle ran but could not judge (crash, exit 2, signal, no majority)."""

    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"
    UNJUDGED = "unjudged"

    @property
    def judged(self) -> bool:
        return self in (Verdict.GOOD, Verdict.BAD)


#: Outcome of :func:`minimize`.
#: found       a 1-minimal failing set (confirmed by a BAD trial of exactly that set)
#: not-reproduced  the whole changed set is GOOD: no culprit among these changes
#: good-fails  the empty set (the good environment itself) is BAD
#: undetermined    trials that could not be judged hide the answer (see ``suspects``)
STATUSES = ("found", "not-reproduced", "good-fails", "undetermined")


@dataclass
class MinimizeResult(Generic[T]):
    status: str
    culprits: list[T] = field(default_factory=list)
    suspects: list[T] = field(default_factory=list)
    decisive: frozenset[T] | None = None
    reason: str = ""


class _Tester(Generic[T]):
    """Memoises the caller's ``test`` so a set is never tried twice."""

    def __init__(self, test: Callable[[frozenset[T]], Verdict]) -> None:
        self._test = test
        self.seen: dict[frozenset[T], Verdict] = {}

    def __call__(self, subset: frozenset[T]) -> Verdict:
        if subset not in self.seen:
            self.seen[subset] = self._test(subset)
        return self.seen[subset]

    def any_good(self) -> bool:
        return Verdict.GOOD in self.seen.values()


def minimize(items: Sequence[T], test: Callable[[frozenset[T]], Verdict]) -> MinimizeResult[T]:
    """Find a 1-minimal subset of ``items`` whose trial is BAD.

    ``test(subset)`` runs a trial with exactly ``subset`` taken from the bad side
    (the rest from the good side). The empty set is the good environment and is
    assumed GOOD unless no trial ever comes back GOOD, in which case it is tested.

    Strategy (delta debugging with a kept background, as in QuickXplain): with
    ``found`` already known necessary, bisect the prefix length of the remaining
    candidates to find the first one that makes ``found + prefix`` fail; add it to
    ``found`` and repeat on the candidates before it until ``found`` alone fails.
    Each step halves the candidates with one trial, so a single culprit among n
    costs 1 (whole set) + ceil(log2 n) + 1 (confirming it alone, or checking the good
    environment when no trial was GOOD) trials at most, where classic ddmin spends up
    to two trials per halving. Under a monotone
    oracle the result is 1-minimal, so a pair that only breaks together is found.
    """
    tester: _Tester[T] = _Tester(test)
    everything = frozenset(items)
    whole = tester(everything)
    if whole is Verdict.GOOD:
        return MinimizeResult("not-reproduced", reason="the trial with every change is good")
    if not whole.judged:
        return MinimizeResult(
            "undetermined", suspects=list(items), reason=f"the trial with every change could not be judged ({whole.value})"
        )
    found: list[T] = []
    candidates = list(items)
    while True:
        if found:
            verdict = tester(frozenset(found))
            if verdict is Verdict.BAD:
                return _confirmed(tester, found)
            if not verdict.judged:
                return MinimizeResult(
                    "undetermined", suspects=found + candidates,
                    reason=f"the trial with only {len(found)} suspected change(s) could not be judged",
                )
        step = _first_failing_prefix(tester, found, candidates)
        if isinstance(step, MinimizeResult):
            return step
        found.append(candidates[step - 1])
        candidates = candidates[: step - 1]


def _confirmed(tester: _Tester[T], found: list[T]) -> MinimizeResult[T]:
    """Check the good environment when no trial was GOOD: an oracle that fails
    everywhere must not blame the last change it was shown."""
    if not tester.any_good():
        baseline = tester(frozenset())
        if baseline is Verdict.BAD:
            return MinimizeResult("good-fails", reason="the good environment itself fails the oracle")
        if not baseline.judged:
            return MinimizeResult(
                "undetermined", suspects=found, reason="the good environment could not be judged"
            )
    return MinimizeResult("found", culprits=list(found), decisive=frozenset(found))


def _first_failing_prefix(
    tester: _Tester[T], found: list[T], candidates: list[T]
) -> int | MinimizeResult[T]:
    """Smallest k such that ``found + candidates[:k]`` is BAD (k = len is known BAD,
    k = 0 known or assumed GOOD). Unjudged midpoints are stepped around."""
    lo, hi = 0, len(candidates)
    while hi - lo > 1:
        mid = _judged_midpoint(tester, found, candidates, lo, hi)
        if mid is None:
            return MinimizeResult(
                "undetermined", suspects=found + candidates[lo:hi],
                reason=f"trials that could not be judged hide which of {hi - lo} changes is needed",
            )
        mid_k, verdict = mid
        if verdict is Verdict.BAD:
            hi = mid_k
        else:
            lo = mid_k
    return hi


def _judged_midpoint(
    tester: _Tester[T], found: list[T], candidates: list[T], lo: int, hi: int
) -> tuple[int, Verdict] | None:
    """Try the middle of (lo, hi) first, then its neighbours outward, until a trial judges."""
    centre = (lo + hi) // 2
    for k in sorted(range(lo + 1, hi), key=lambda k: (abs(k - centre), k)):
        verdict = tester(frozenset(found) | frozenset(candidates[:k]))
        if verdict.judged:
            return k, verdict
    return None


@dataclass
class NarrowResult:
    """Outcome of :func:`first_bad` over ``versions`` (ordered good side -> bad side).

    ``first_bad``/``last_good``: the tightest judged boundary; ``skipped``: versions in
    between that could not be tried (so the first bad one may be any of them).
    """

    first_bad: str
    last_good: str
    skipped: list[str] = field(default_factory=list)
    tried: dict[str, Verdict] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return not self.skipped


def first_bad(versions: Sequence[str], test: Callable[[str], Verdict]) -> NarrowResult:
    """Bisect ``versions`` (first known GOOD, last known BAD) for the first BAD one.

    Versions whose trial cannot be judged are skipped, never blamed: the boundary
    is then reported as a range with the skipped versions inside it.
    """
    if len(versions) < 2:
        raise ValueError("need at least the good and the bad version")
    lo, hi = 0, len(versions) - 1
    tried: dict[str, Verdict] = {}
    while hi - lo > 1:
        centre = (lo + hi) // 2
        order = sorted(
            (k for k in range(lo + 1, hi) if versions[k] not in tried), key=lambda k: (abs(k - centre), k)
        )
        judged = None
        for k in order:
            tried[versions[k]] = test(versions[k])
            if tried[versions[k]].judged:
                judged = k
                break
        if judged is None:
            break
        if tried[versions[judged]] is Verdict.BAD:
            hi = judged
        else:
            lo = judged
    skipped = [v for v in versions[lo + 1 : hi]]
    return NarrowResult(first_bad=versions[hi], last_good=versions[lo], skipped=skipped, tried=tried)


# -- speculation, for running several trials at once -----------------------------------

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

#: A search as a function of its ``test`` callback, e.g. ``lambda test: minimize(items, test)``.
Search = Callable[[Callable[[K], Verdict]], R]


class _Needed(Exception):
    def __init__(self, key: Hashable) -> None:
        super().__init__(key)
        self.key = key


def next_needed(search: Search[K, Any], verdicts: Mapping[K, Verdict]) -> K | None:
    """The first trial ``search`` asks for whose verdict ``verdicts`` does not hold, or
    None when the search concludes on ``verdicts`` alone. ``search`` must be pure (both
    searches here are): it is replayed from the start."""

    def test(key: K) -> Verdict:
        if key in verdicts:
            return verdicts[key]
        raise _Needed(key)

    try:
        search(test)
    except _Needed as needed:
        return needed.key  # type: ignore[return-value]
    return None


def speculate(search: Search[K, Any], known: Mapping[K, Verdict], running: Collection[K], limit: int,
              max_states: int = 64) -> list[K]:
    """Up to ``limit`` trials worth starting now, most useful first, none in ``running``.

    Walks the search's decision tree breadth first from ``known``: the next trial the
    search needs, then the one it needs after each outcome of that (BAD first, then
    GOOD), and so on. Trials in ``running`` are branched on without being proposed.
    Whatever the proposals' verdicts, the search consumes them in its own order, so its
    result and its list of trials are those of the sequential search.
    """
    out: list[K] = []
    queue: deque[dict[K, Verdict]] = deque([dict(known)])
    expanded = 0
    while queue and len(out) < limit and expanded < max_states:
        state = queue.popleft()
        expanded += 1
        key = next_needed(search, state)
        if key is None:
            continue
        if key not in running and key not in out:
            out.append(key)
        queue.extend({**state, key: verdict} for verdict in (Verdict.BAD, Verdict.GOOD))
    return out
