"""Text that came from outside parity (a record, a model, a file) made safe to print.

Module names, asset paths and notes travel inside records from other machines; a name
holding ``ESC[2J`` or an OSC-8 link must not reach a terminal as a control sequence.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and the C1 range (CSI, OSC, ... as one byte).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``str(text)`` with every control character shown as a visible ``\\xNN`` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def one_line(text: object) -> str:
    """Like :func:`printable`, and newlines and tabs too, for table cells and one-line messages."""
    return printable(str(text).replace("\n", "\\n").replace("\t", "\\t"))
