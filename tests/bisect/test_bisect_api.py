"""The public names of parity.bisect are pinned: adding or removing one is a decision."""

import parity.bisect


def test_exported_members() -> None:
    assert sorted(parity.bisect.__all__) == [
        "BisectResult", "Change", "CommandOracle", "IndexOptions", "Oracle", "Trial", "Verdict", "bisect",
        "changes_between",
    ]
    for name in parity.bisect.__all__:
        assert getattr(parity.bisect, name) is not None
