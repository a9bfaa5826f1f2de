"""Fixtures for export tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helpers live in export_testing.py next to this file; --import-mode=importlib leaves
# sys.path alone, so put this folder on it.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from export_testing import MODELS  # noqa: E402


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS
