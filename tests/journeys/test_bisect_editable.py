"""Journey: `parity bisect` with the verify oracle, parity installed editable (as the
README's development install has it) in both venvs.

Trials are built on A's interpreter with B's releases overlaid; bisect must install the
running parity into each, or every trial is "could not judge". Packages come from the
session's wheelhouse (`--find-links ... --no-index`), as a user passes a wheel folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from journey_tools import B_RELEASES, Journey, Venv

pytestmark = pytest.mark.slow


def _bisect(research: Journey, venv: Venv, record: str, bad: Path, wheelhouse: Path, ok: tuple[int, ...]):
    return research.parity(
        venv, "bisect", "--good", record, "--bad", str(bad), "--oracle", f"verify:{record}",
        "--find-links", str(wheelhouse), "--no-index", "--cache-dir", str(research.work / "bisect-cache"),
        "--json", ok=ok)


def test_bisect_names_the_package_that_changed_preprocessing(research: Journey, venv_b: Venv,
                                                             production_snapshot: Path, wheelhouse: Path) -> None:
    """textmodel.py normalizes text with textprep; 1.1 lowercases. Among the four
    changed releases, bisect blames textprep alone."""
    doc = _bisect(research, venv_b, "golden-text", production_snapshot, wheelhouse, ok=(1,)).json()
    assert doc["status"] == "found", doc["reason"]
    assert [c["name"] for c in doc["culprits"]] == ["textprep"], doc["culprits"]
    assert {c["name"] for c in doc["changes"]} == set(B_RELEASES) | {"textprep"}
    assert all(t["verdict"] in ("good", "bad") for t in doc["trials"]), doc["trials"]


def test_bisect_says_no_package_breaks_the_minilm_record(research: Journey, venv_b: Venv,
                                                         production_snapshot: Path, wheelhouse: Path) -> None:
    """MiniLM verifies on B's releases: nothing is blamed, and the answer says the bad
    side does not fail (never exit 1, never a crash)."""
    step = _bisect(research, venv_b, "golden", production_snapshot, wheelhouse, ok=(0, 2))
    doc = step.json()
    assert doc["status"] == "not-reproduced" and doc["culprits"] == [], doc["reason"]
    assert all(t["verdict"] == "good" for t in doc["trials"]), doc["trials"]
