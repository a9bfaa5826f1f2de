"""The public names of parity.bisection are pinned: adding or removing one is a decision."""

import parity.bisection


def test_exported_members() -> None:
    assert sorted(parity.bisection.__all__) == [
        "BisectResult", "Change", "CommandOracle", "IndexOptions", "Oracle", "Trial", "Verdict", "bisect",
        "changes_between",
    ]
    for name in parity.bisection.__all__:
        assert getattr(parity.bisection, name) is not None
