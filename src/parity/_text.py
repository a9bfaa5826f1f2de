"""Text that came from outside parity (a record, a model, a file) made safe to print,
and sizes in bytes written and read the way people write them.

Module names, asset paths and notes travel inside records from other machines; a name
holding ``ESC[2J`` or an OSC-8 link must not reach a terminal as a control sequence.
"""

from __future__ import annotations

import re

_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)

# C0 controls except tab and newline, DEL, and the C1 range (CSI, OSC, ... as one byte).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``str(text)`` with every control character shown as a visible ``\\xNN`` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def one_line(text: object) -> str:
    """Like :func:`printable`, and newlines and tabs too, for table cells and one-line messages."""
    return printable(str(text).replace("\n", "\\n").replace("\t", "\\t"))


def format_size(n: float) -> str:
    """``1.5 GB``, ``730 MB``, ``12.0 kB``, ``512 B`` (powers of 1000, as :func:`size_of` reads them)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def size_of(text: object) -> int | None:
    """Bytes from ``500M``, ``2G``, ``1.5GB``, ``700MiB`` or a plain number of bytes (K/M/G/T:
    powers of 1000; Ki/Mi/Gi/Ti: of 1024); None when ``text`` is not a size. The caller
    names its flag in the error."""
    match = _SIZE.match(str(text))
    if not match:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
