"""How every report writes a number: one set of rules for the terminal and the HTML page.

Measurements (errors, metrics, tolerances) have 3 significant digits, in scientific
notation outside ``[1e-3, 1e4)``; an exact zero is ``0`` and an integer is written whole.
Durations scale to s/ms/µs/ns, sizes to kB/MB/GB (powers of 1000, as ``--max-size``
reads them), ratios have two decimals and an ``x``, and a cosine keeps six decimals
(0.99999 must not read as 1). A missing value is :data:`MISSING`.
"""

from __future__ import annotations

import math
from typing import Any

from parity._text import format_size, one_line

#: What a report shows for a value that is absent (None).
MISSING = "-"

_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def num(x: Any) -> str:
    """A measurement: ``0.00123``, ``2.00e-04``, ``1.5e+05``, ``42``, ``0``, ``nan``."""
    if not _real(x):
        return MISSING if x is None else one_line(x)
    if isinstance(x, int) or x == 0:
        return str(int(x))
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def cosine(x: Any) -> str:
    """A cosine similarity with the six decimals that tell 0.99999 from 1."""
    return f"{x:.6f}" if _real(x) else num(x)


def ratio(x: Any) -> str:
    """A ratio of two times or sizes: ``1.40x``."""
    return f"{x:.2f}x" if _real(x) else num(x)


def ratio_range(low: Any, high: Any, sep: str = "-") -> str:
    """A confidence interval of a ratio: ``1.30-1.50`` (``?`` for an unknown end)."""
    return sep.join("?" if not _real(v) else f"{v:.2f}" for v in (low, high))


def percent(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage: ``75.0%``."""
    return f"{100 * x:.{digits}f}%" if _real(x) else num(x)


def seconds(x: Any) -> str:
    """A duration scaled to s/ms/µs/ns with 3 significant digits: ``12.5 ms``."""
    if not _real(x):
        return MISSING if x is None else one_line(x)
    for unit, scale in _TIME_UNITS[:-1]:
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x / 1e-9:.3g} ns"


def seconds_range(low: Any, high: Any) -> str:
    """A confidence interval of durations, both ends in the unit of the larger: ``12.1-13.5 ms``."""
    ref = high if _real(high) else low
    if not _real(ref):
        return "?"
    unit = seconds(ref).split(" ")[1]
    scale = dict(_TIME_UNITS)[unit]
    ends = ["?" if not _real(v) else f"{v / scale:.3g}" for v in (low, high)]
    return f"{ends[0]}-{ends[1]} {unit}"


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


def size(n: Any) -> str:
    """A number of bytes: ``1.5 GB``, ``730 MB``, ``12.0 kB``, ``512 B``."""
    if not _real(n):
        return MISSING if n is None else one_line(n)
    return format_size(n)
