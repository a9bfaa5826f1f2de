"""Which ``atol``/``rtol`` applies to a layer.

Order, later wins: defaults for the tensor's dtype, the global values (from the user or
the record's manifest), the first per-layer override whose glob pattern matches the key,
then the noise floor measured in A, which can only raise ``atol``, never lower it.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parity.errors import ParityError
from parity.records.flatten import strip_wrapper_prefix

__all__ = ["Tolerance", "TolerancePolicy", "default_tolerance", "policy_from", "strip_wrapper_prefix"]

#: dtype name -> (atol, rtol). Half precisions carry ~3 (fp16) and ~2 (bf16) decimal
#: digits, so float32's tolerances would flag every rounding difference there.
DEFAULTS: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-6),
    "float32": (1e-5, 1e-4),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
}
FLOAT8 = (1e-1, 1e-1)
EXACT = (0.0, 0.0)

def default_tolerance(dtype: str) -> tuple[float, float]:
    """Defaults for a dtype name ("float32", "torch.float16"); exact for ints and bool."""
    name = dtype.removeprefix("torch.")
    if name in DEFAULTS:
        return DEFAULTS[name]
    if name.startswith("float8"):
        return FLOAT8
    return EXACT


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    noise_floor: float | None = None
    source: str = "default"


@dataclass(frozen=True)
class TolerancePolicy:
    """Global ``atol``/``rtol`` (None: per-dtype default) and per-key glob overrides.

    ``overrides`` maps a glob over layer keys (``encoder.layer.*.attention*``) to
    ``{"atol": x, "rtol": y}`` (either may be left out). Keys are matched with and
    without wrapper prefixes.
    """

    atol: float | None = None
    rtol: float | None = None
    overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_value("--atol", self.atol)
        _check_value("--rtol", self.rtol)
        for pattern, values in self.overrides.items():
            if not isinstance(values, Mapping) or not set(values) <= {"atol", "rtol"}:
                raise ParityError(
                    f"tolerance override {pattern!r}: expected {{'atol': x, 'rtol': y}}, got {values!r}",
                    fix="give each pattern a mapping with atol and/or rtol",
                )
            for name, value in values.items():
                _check_value(f"override {pattern!r} {name}", value)

    def for_layer(self, key: str, dtype: str, noise_floor: Any = None) -> Tolerance:
        """The tolerance for one layer key of the given dtype."""
        atol, rtol = default_tolerance(dtype)
        source = "default"
        exact = (atol, rtol) == EXACT
        if not exact and (self.atol is not None or self.rtol is not None):
            atol = self.atol if self.atol is not None else atol
            rtol = self.rtol if self.rtol is not None else rtol
            source = "global"
        override = self._override(key)
        if override is not None and not exact:
            atol, rtol = override[1].get("atol", atol), override[1].get("rtol", rtol)
            source = f"override {override[0]}"
        floor = noise_floor_value(noise_floor)
        if floor is not None and not exact and floor > atol:
            atol, source = floor, "noise floor"
        return Tolerance(atol=atol, rtol=rtol, noise_floor=floor, source=source)

    def _override(self, key: str) -> tuple[str, Mapping[str, float]] | None:
        bare = strip_wrapper_prefix(key)
        for pattern, values in self.overrides.items():
            if fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(bare, pattern):
                return pattern, values
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "overrides": {k: dict(v) for k, v in self.overrides.items()},
            "defaults": {k: {"atol": v[0], "rtol": v[1]} for k, v in DEFAULTS.items()},
        }


def noise_floor_value(raw: Any) -> float | None:
    """A layer's measured run-to-run error as one number (max abs), or None.

    Accepts a number or a mapping with ``max_abs`` (what ``--calibrate`` stores).
    """
    if isinstance(raw, Mapping):
        raw = raw.get("max_abs")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw) and raw >= 0:
        return float(raw)
    return None


def policy_from(
    manifest_tolerances: Any, atol: float | None, rtol: float | None, overrides: Mapping[str, Any] | None
) -> TolerancePolicy:
    """Merge the record's stored tolerances with the caller's; the caller wins."""
    stored = manifest_tolerances if isinstance(manifest_tolerances, Mapping) else {}
    merged: dict[str, Any] = dict(stored.get("overrides") or {})
    merged.update(overrides or {})
    return TolerancePolicy(
        atol=atol if atol is not None else _number(stored.get("atol")),
        rtol=rtol if rtol is not None else _number(stored.get("rtol")),
        overrides=merged,
    )


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _check_value(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ParityError(f"{name}: {value!r} is not a tolerance", fix="pass a finite number >= 0, e.g. 1e-5")
