"""Journey: doctor and lock A's environment, rebuild it from the lock, diff: identical.

The rebuild installs the lock file as written (its own `--find-links`/`--extra-index-url`
lines included) with pip, from the session's wheelhouse instead of the network
(`--no-index --find-links`), then parity the way A has it (editable: not lockable, and
the lock says so).
"""

from __future__ import annotations

import pytest
from journey_tools import Journey, Venv

pytestmark = pytest.mark.slow


def test_doctor_and_lock_then_rebuild_is_identical(research: Journey, venv_a: Venv, journey_root) -> None:
    lock = research.parity(venv_a, "lock", "research.json", "-o", "research.lock")
    assert "parity" in lock.stderr and "not lockable" in lock.stderr, lock.describe()
    text = (research.work / "research.lock").read_text()
    assert "\ntorch==2.13.0+cpu\n" in text and "\ntextprep==1.0\n" in text
    doctor = research.parity(venv_a, "doctor", "research.lock", "--snapshot", "research.json", "--json")
    assert doctor.json()["counts"]["error"] == 0, doctor.describe()

    rebuilt = Venv(journey_root / "venv-rebuilt", venv_a.pins, venv_a.wheelhouse, label="rebuilt")
    rebuilt.build(requirements=research.work / "research.lock")
    research.parity(rebuilt, "snapshot", "-o", "rebuilt.json")
    diff = research.parity(venv_a, "diff", "research.json", "rebuilt.json", "--json", ok=(0, 1))
    assert diff.returncode == 0 and diff.json()["identical"] is True, diff.describe()
