"""The raylet processes on this machine, so tests can check none outlives its cluster."""

from __future__ import annotations

import subprocess


def raylets() -> list[str]:
    """Command lines of raylet processes on this machine (ours and anyone's)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if "/raylet" in line and "ps -eo" not in line]
