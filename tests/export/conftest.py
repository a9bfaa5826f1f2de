"""Fixtures for export tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_testing import MODELS


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS
