"""The TARGET a record was made from, for tests that verify against it.

A record never chooses the code verify runs when its target is an absolute path
(issue 14), so these tests pass the target on the command line as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path


def recorded_target(rec: Path) -> str:
    return str(json.loads((rec / "manifest.json").read_text())["target"])
