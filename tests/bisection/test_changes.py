"""The changed set and the Python-version check."""

from __future__ import annotations

import pytest

from parity.bisection.changes import Change, changes_between, check_same_python, full_version
from parity.errors import BisectError


def _snap(packages: dict, python: str = "3.11.7") -> dict:
    return {"python": {"version": python}, "packages": packages}


def _pkg(version: str, local: str | None = None) -> dict:
    return {"version": version, "local": local}


def test_every_kind_of_change() -> None:
    good = _snap({"torch": _pkg("2.1.0+cu118", "cu118"), "numpy": _pkg("1.26.4"), "gone": _pkg("1.0"),
                  "Same_Name": _pkg("3.0")})
    bad = _snap({"torch": _pkg("2.1.0+cpu", "cpu"), "numpy": _pkg("2.0.1"), "new": _pkg("0.1"),
                 "same-name": _pkg("3.0")})
    assert changes_between(good, bad) == [
        Change("gone", "1.0", None, "removed"),
        Change("new", None, "0.1", "added"),
        Change("numpy", "1.26.4", "2.0.1", "changed"),
        Change("torch", "2.1.0+cu118", "2.1.0+cpu", "variant"),
    ]


def test_local_label_only_in_the_local_field_still_counts() -> None:
    assert full_version({"version": "2.1.0", "local": "cu121"}) == "2.1.0+cu121"
    good = _snap({"torch": {"version": "2.1.0", "local": "cu121"}})
    bad = _snap({"torch": {"version": "2.1.0", "local": "cpu"}})
    (change,) = changes_between(good, bad)
    assert change.kind == "variant" and change.bad == "2.1.0+cpu"


def test_identical_sides_have_no_changes() -> None:
    snap = _snap({"a": _pkg("1.0")})
    assert changes_between(snap, snap) == []


def test_snapshot_without_packages_is_refused() -> None:
    with pytest.raises(BisectError, match="--bad"):
        changes_between(_snap({}), {"python": {}})


def test_python_mismatch_is_explained_and_can_be_allowed() -> None:
    good, bad = _snap({}, "3.10.12"), _snap({}, "3.11.7")
    with pytest.raises(BisectError) as info:
        check_same_python(good, bad, allow_mismatch=False)
    assert "3.10" in str(info.value) and "3.11" in str(info.value) and "--allow-python-mismatch" in str(info.value)
    warning = check_same_python(good, bad, allow_mismatch=True)
    assert warning and "3.10" in warning
    assert check_same_python(_snap({}, "3.11.1"), _snap({}, "3.11.9"), allow_mismatch=False) is None
