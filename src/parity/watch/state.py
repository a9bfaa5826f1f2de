"""The watch's state folder: the last canary's result, the last failure, the status.

``last-canary.json`` and ``last-failure.json`` are ``parity.verify/1`` documents (what
``parity verify --json`` prints), so ``parity watch-report DIR`` renders them as the usual
report; ``status.json`` is the last :meth:`Watch.status`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity._io import atomic_write_json, read_json
from parity.errors import EXIT_FINDING, EXIT_OK, ParityError

LAST, FAILURE, STATUS = "last-canary.json", "last-failure.json", "status.json"


def write_canary(folder: Path, result_json: dict[str, Any], status_json: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / LAST, result_json)
    if result_json.get("verdict") == "FAIL":
        atomic_write_json(folder / FAILURE, result_json)
    atomic_write_json(folder / STATUS, status_json)


def write_status(folder: Path, status_json: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / STATUS, status_json)


@dataclass
class CanaryReport:
    """A canary result read back from a state folder (``to_json()``: parity.verify/1)."""

    path: Path
    result: dict[str, Any]
    status: dict[str, Any] | None

    @property
    def verdict(self) -> str:
        return str(self.result.get("verdict"))

    @property
    def exit_code(self) -> int:
        return EXIT_FINDING if self.verdict == "FAIL" else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return dict(self.result)


def read_canary(folder: str | os.PathLike[str], failure: bool = False) -> CanaryReport:
    """The last canary (or the last failing one) of the watch whose state folder is ``folder``."""
    root = Path(folder)
    name = FAILURE if failure else LAST
    path = root / name
    if not path.is_file():
        if not root.is_dir():
            raise ParityError(f"{root}: no such folder", fix="pass the watch's state_dir (see /parity/status)")
        what = "no canary has failed" if failure and (root / LAST).is_file() else "no canary has finished"
        raise ParityError(f"{path}: not found ({what} yet)",
                          fix="wait for the first canary, or call Watch.check()" if not failure else
                          "leave out --failure to see the last canary")
    doc = read_json(path, "a canary result (parity.verify/1)")
    if not isinstance(doc, dict) or doc.get("schema") != "parity.verify/1":
        raise ParityError(f"{path}: not a parity.verify/1 document", fix="pass the watch's state_dir")
    status = read_json(root / STATUS, "a watch status") if (root / STATUS).is_file() else None
    return CanaryReport(path, doc, status if isinstance(status, dict) else None)
