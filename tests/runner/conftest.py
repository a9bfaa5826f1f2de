"""Fixtures for the C++ runner tests: the built runner and artifacts made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner_testing import CONV, TINY


@pytest.fixture(scope="session")
def runner_exe() -> Path:
    """The runner, built against this torch (once per torch version and source)."""
    from parity.runner import executable

    return executable()


@pytest.fixture(scope="session")
def conv_aoti(tmp_path_factory: pytest.TempPathFactory, runner_exe: Path) -> Path:
    """The conv net of tests/models.py as an AOTInductor package (compiled once: slow)."""
    from parity.exporters import export

    out = tmp_path_factory.mktemp("conv-aoti") / "conv.pt2"
    export(CONV, "aoti", out, check=False)
    return out


@pytest.fixture(scope="session")
def tiny_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny two-layer model as TorchScript (fast)."""
    from parity.exporters import export

    out = tmp_path_factory.mktemp("tiny-ts") / "tiny.pt"
    export(TINY, "torchscript", out, check=False)
    return out
