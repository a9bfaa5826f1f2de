"""The TARGET a record was made from, for tests that verify against it.

A record never chooses the code verify runs when its target is an absolute path
(issue 14), so these tests pass the target on the command line as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path


def recorded_target(rec: Path) -> str:
    return str(json.loads((rec / "manifest.json").read_text())["target"])


TESTS = Path(__file__).resolve().parents[1]


def pipeline_file(tmp_path: Path, name: str, body: str) -> str:
    """A pipeline file ``name.py`` in tmp_path whose build() runs ``body`` (models imported)."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        "import sys, torch\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import models\n\n"
        "def build():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    )
    return f"{path}:build"
