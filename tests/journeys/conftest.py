"""Session fixtures of the journeys: the wheelhouse, venvs A and B, and A's records.

Each fixture that runs parity asserts its own steps, so a journey that cannot start says
which step failed. Step timings are written to ``journey-steps.txt`` in the session's
cache folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from journey_tools import (
    TEXTMODEL_PY,
    Journey,
    Venv,
    a_pins,
    b_pins,
    clean_env,
    fill_wheelhouse,
    minilm_dir,
    readme_serving_py,
    requirement_lines,
)


@pytest.fixture(scope="session")
def journey_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = os.environ.get("PARITY_JOURNEY_CACHE")
    if cached:
        root = Path(cached).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return root
    return tmp_path_factory.mktemp("journeys")


@pytest.fixture(scope="session")
def wheelhouse(journey_root: Path) -> Path:
    folder = journey_root / "wheelhouse"
    fill_wheelhouse(folder, requirement_lines(a_pins()) + requirement_lines(b_pins()))
    return folder


@pytest.fixture(scope="session")
def venv_a(journey_root: Path, wheelhouse: Path) -> Venv:
    """The research box: test.lock's releases (transformers, tokenizers, numpy), textprep 1.0."""
    return Venv(journey_root / "venv-a", a_pins(), wheelhouse, label="A").build()


@pytest.fixture(scope="session")
def venv_b(journey_root: Path, wheelhouse: Path) -> Venv:
    """The production box: older transformers, tokenizers and numpy releases, textprep 1.1."""
    return Venv(journey_root / "venv-b", b_pins(), wheelhouse, label="B").build()


@pytest.fixture(scope="session")
def journey(tmp_path_factory: pytest.TempPathFactory, journey_root: Path) -> Iterator[Journey]:
    """One working folder shared by every journey (records made in A are verified in B),
    with parity's and uv's caches inside the session."""
    work = tmp_path_factory.mktemp("work")
    caches = tmp_path_factory.mktemp("caches")
    env = clean_env({"XDG_CACHE_HOME": str(caches), "PARITY_CACHE_DIR": str(caches / "parity"),
                     "UV_CACHE_DIR": str(caches / "uv")})
    j = Journey(work, env)
    yield j
    lines = [f"{s.seconds:7.1f} s  exit {s.returncode}  [{s.where}] {' '.join(s.argv)}" for s in j.log]
    total = sum(s.seconds for s in j.log)
    (journey_root / "journey-steps.txt").write_text("\n".join([*lines, f"{total:7.1f} s  total"]) + "\n")


@pytest.fixture(scope="session")
def research(journey: Journey, venv_a: Venv) -> Journey:
    """The README's walkthrough in A: serving.py (verbatim) with the real MiniLM as
    assets/model, a snapshot, and the record with full capture, calibration and a bench
    baseline. Also the journeys' text model, recorded the same way."""
    work = journey.work
    (work / "serving.py").write_text(readme_serving_py())
    (work / "assets").mkdir()
    (work / "assets" / "model").symlink_to(minilm_dir(venv_a), target_is_directory=True)
    (work / "textmodel.py").write_text(TEXTMODEL_PY)
    journey.parity(venv_a, "snapshot", "-o", "research.json")
    journey.parity(venv_a, "record", "serving.py:build", "-o", "golden", "--capture", "full", "--calibrate",
                   "--bench")
    journey.parity(venv_a, "record", "textmodel.py:build", "-o", "golden-text", "--capture", "full", "--bench")
    return journey


@pytest.fixture(scope="session")
def production_snapshot(research: Journey, venv_b: Venv) -> Path:
    research.parity(venv_b, "snapshot", "-o", "production.json")
    return research.work / "production.json"
