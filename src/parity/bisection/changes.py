"""The changed set: which packages differ between the good and the bad snapshot.

A :class:`Change` is one package whose installed distribution differs: another
version, added on the bad side, removed on the bad side, or the same public version
with another local label (a wheel *variant*, e.g. ``2.1.0+cu118`` -> ``2.1.0+cpu``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parity.env.snapshots import canonical_name
from parity.errors import BisectError

CHANGE_KINDS = ("changed", "added", "removed", "variant")


@dataclass(frozen=True)
class Change:
    """One package difference. ``good``/``bad``: full version (local label included),
    ``None`` where the package is absent on that side."""

    name: str
    good: str | None
    bad: str | None
    kind: str

    def version(self, bad_side: bool) -> str | None:
        return self.bad if bad_side else self.good

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "good": self.good, "bad": self.bad, "change": self.kind}


def full_version(entry: dict[str, Any]) -> str:
    """The version with its local label, whether the snapshot put the label in
    ``version`` already or only in ``local``."""
    version = str(entry.get("version") or "")
    local = entry.get("local")
    if local and "+" not in version:
        return f"{version}+{local}"
    return version


def changes_between(good: dict[str, Any], bad: dict[str, Any]) -> list[Change]:
    """Every package difference between two snapshots, sorted by name."""
    good_pkgs = _packages(good, "--good")
    bad_pkgs = _packages(bad, "--bad")
    out: list[Change] = []
    for name in sorted(set(good_pkgs) | set(bad_pkgs)):
        a, b = good_pkgs.get(name), bad_pkgs.get(name)
        if a == b:
            continue
        out.append(Change(name, a, b, _kind(a, b)))
    return out


def _packages(snap: dict[str, Any], flag: str) -> dict[str, str]:
    packages = snap.get("packages")
    if not isinstance(packages, dict):
        raise BisectError(f"{flag}: the snapshot has no 'packages' table", fix="pass a file written by `parity snapshot` or a record directory")
    return {canonical_name(key): full_version(entry) for key, entry in packages.items() if isinstance(entry, dict)}


def _kind(good: str | None, bad: str | None) -> str:
    if good is None:
        return "added"
    if bad is None:
        return "removed"
    if good.split("+", 1)[0] == bad.split("+", 1)[0]:
        return "variant"
    return "changed"


def python_version(snap: dict[str, Any]) -> str | None:
    """``major.minor`` of the snapshot's interpreter, or None when not recorded."""
    version = (snap.get("python") or {}).get("version")
    if not version:
        return None
    return ".".join(str(version).split(".")[:2])


def check_same_python(good: dict[str, Any], bad: dict[str, Any], allow_mismatch: bool) -> str | None:
    """Refuse snapshots from different Python versions unless allowed.

    Trials run on the good side's interpreter, so bad-side wheels built for another
    Python may not install or may behave differently there. Returns a warning line
    when the mismatch is allowed, None when the versions agree.
    """
    a, b = python_version(good), python_version(bad)
    if a is None or b is None or a == b:
        return None
    message = (
        f"--good has Python {a} but --bad has Python {b}: trials run on the good side's "
        f"Python {a}, where bad-side wheels built for {b} may not install or may behave differently"
    )
    if not allow_mismatch:
        raise BisectError(message, fix="pass --allow-python-mismatch to bisect anyway, or take both snapshots on one Python version")
    return message
