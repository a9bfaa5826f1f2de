"""Helpers for the C++ runner tests."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: the conv net of tests/models.py and the tiny two-layer model of the export tests
CONV = f"{TESTS / 'models.py'}:build_conv"
TINY = f"{TESTS / 'exporters' / 'models' / 'tiny_model.py'}:build"

_PYTHON = re.compile(r"^(lib)?python\d|libtorch_python|\.cpython-")


def python_mappings(maps: str) -> list[str]:
    """Files in a /proc/PID/maps text that mean a Python interpreter is in the process:
    libpython, an interpreter executable (python3.11, statically linked builds included),
    libtorch_python or a CPython extension module. Folder names do not count (the wheel's
    libtorch lives under .../python3.11/site-packages/torch/lib)."""
    files = {line.split()[-1] for line in maps.splitlines() if len(line.split()) >= 6 and "/" in line}
    return sorted(f for f in files if _PYTHON.search(f.rsplit("/", 1)[-1]))
