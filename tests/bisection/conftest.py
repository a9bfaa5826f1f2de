"""Fixtures for the bisect tests: a find-links folder of tiny wheels, a good venv, snapshots."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# The helpers beside this file, importable under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
from tinywheels import ORACLE, build_wheel, make_good_venv, write_snapshot


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv's cache in a session folder (warm across tests, never the user's), and no
    pip configuration leaking an index into hermetic tests."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL",
                "UV_FIND_LINKS", "PARITY_BISECT_CACHE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    return folder


@pytest.fixture
def oracle_script(tmp_path: Path) -> Path:
    path = tmp_path / "oracle.py"
    path.write_text(ORACLE, encoding="utf-8")
    return path


@pytest.fixture
def sixteen(tmp_path: Path, wheels: Path) -> Callable[[set[str]], tuple[Path, Path]]:
    """16 packages pkg-00..pkg-15 at 1.0 (good) and 2.0 (bad); the 2.0 of each name in
    ``broken`` has BROKEN = True. Returns (good snapshot, bad snapshot); the good one
    names a real venv holding the 1.0 versions."""

    def make(broken: set[str]) -> tuple[Path, Path]:
        names = [f"pkg-{i:02d}" for i in range(16)]
        for name in names:
            build_wheel(wheels, name, "1.0")
            build_wheel(wheels, name, "2.0", "BROKEN = True\n" if name in broken else "")
        python = make_good_venv(tmp_path, wheels, {n: "1.0" for n in names})
        good = write_snapshot(tmp_path / "good.json", {n: "1.0" for n in names}, python=str(python))
        bad = write_snapshot(tmp_path / "bad.json", {n: "2.0" for n in names}, python=str(python))
        return good, bad

    return make
