"""The search algorithms on fake oracles: trial counts, pairs, unjudged trials."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.bisection.ddmin import Verdict, first_bad, minimize

ITEMS = [f"p{i:02d}" for i in range(16)]


def oracle_for(*groups: set[str], unjudged: set[str] = frozenset(), always: bool = False):  # type: ignore[assignment]
    """A fake oracle: BAD when a group is wholly in the trial; UNJUDGED when any
    ``unjudged`` item is in it; ``always``: BAD even for the empty set. Counts calls."""
    calls: list[frozenset[str]] = []

    def test(subset: frozenset[str]) -> Verdict:
        calls.append(subset)
        if subset & unjudged:
            return Verdict.UNJUDGED
        if always or any(g <= subset for g in groups):
            return Verdict.BAD
        return Verdict.GOOD

    return test, calls


@pytest.mark.parametrize("culprit", ITEMS)
def test_single_culprit_among_16_within_log2_plus_2_trials(culprit: str) -> None:
    test, calls = oracle_for({culprit})
    result = minimize(ITEMS, test)
    assert result.status == "found"
    assert result.culprits == [culprit]
    assert len(calls) <= math.ceil(math.log2(16)) + 2
    assert len(set(calls)) == len(calls), "a set is never tried twice"


@pytest.mark.parametrize(("a", "b"), [("p00", "p15"), ("p03", "p04"), ("p07", "p08"), ("p11", "p02")])
def test_pair_that_only_breaks_together_is_found(a: str, b: str) -> None:
    test, _ = oracle_for({a, b})
    result = minimize(ITEMS, test)
    assert result.status == "found"
    assert sorted(result.culprits) == sorted([a, b])
    assert result.decisive == frozenset({a, b})
    assert test(frozenset({a})) is Verdict.GOOD and test(frozenset({b})) is Verdict.GOOD


def test_whole_set_good_is_not_reproduced() -> None:
    test, calls = oracle_for()
    result = minimize(ITEMS, test)
    assert result.status == "not-reproduced" and result.culprits == [] and len(calls) == 1


def test_oracle_failing_everywhere_blames_nothing() -> None:
    test, calls = oracle_for(always=True)
    result = minimize(ITEMS, test)
    assert result.status == "good-fails" and result.culprits == []
    assert frozenset() in calls


def test_unjudged_whole_set_says_so_instead_of_blaming() -> None:
    test, _ = oracle_for({"p03"}, unjudged=set(ITEMS))
    result = minimize(ITEMS, test)
    assert result.status == "undetermined" and result.culprits == []
    assert "could not be judged" in result.reason


def test_unjudged_midpoints_are_stepped_around() -> None:
    # p05 makes every trial containing it unjudgeable, the whole set included: the
    # search must say which changes remain suspected instead of blaming one.
    test, _ = oracle_for({"p09"}, unjudged={"p05"})
    result = minimize(ITEMS, test)
    assert result.status == "undetermined"
    assert result.culprits == []
    assert "p09" in result.suspects


def test_unjudged_midpoint_replaced_by_a_neighbour() -> None:
    items = list("abcdefgh")
    seen: list[frozenset[str]] = []

    def test(subset: frozenset[str]) -> Verdict:
        seen.append(subset)
        if subset == frozenset("abcd"):
            return Verdict.UNJUDGED
        return Verdict.BAD if "f" in subset else Verdict.GOOD

    result = minimize(items, test)
    assert result.status == "found" and result.culprits == ["f"]
    assert frozenset("abc") in seen, "the neighbour of the unjudged midpoint was tried"


def test_first_bad_release_exact() -> None:
    versions = ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]
    result = first_bad(versions, lambda v: Verdict.BAD if v >= "1.3" else Verdict.GOOD)
    assert (result.first_bad, result.last_good, result.exact) == ("1.3", "1.2", True)


def test_first_bad_skips_uninstallable_without_blaming_it() -> None:
    versions = ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]

    def test(v: str) -> Verdict:
        if v == "1.2":
            return Verdict.SKIP
        return Verdict.BAD if v >= "1.2" else Verdict.GOOD

    result = first_bad(versions, test)
    assert result.tried["1.2"] is Verdict.SKIP
    assert (result.first_bad, result.last_good, result.skipped) == ("1.3", "1.1", ["1.2"])
    assert not result.exact


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1, max_size=3))))
def test_any_culprit_group_is_found_exactly(case: tuple[int, set[int]]) -> None:
    n, group = case
    items = list(range(n))
    calls: list[frozenset[int]] = []

    def test(subset: frozenset[int]) -> Verdict:
        calls.append(subset)
        return Verdict.BAD if group <= subset else Verdict.GOOD

    result = minimize(items, test)
    assert result.status == "found" and set(result.culprits) == group
    if len(group) == 1:
        assert len(calls) <= math.ceil(math.log2(n)) + 2 if n > 1 else len(calls) <= 2
