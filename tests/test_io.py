from __future__ import annotations

import os
import stat

import pytest

from parity._io import atomic_dir, atomic_write_json, atomic_write_text, read_json
from parity.errors import ParityError


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
        with atomic_dir(tmp_path / "rec") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "rec").stat().st_mode) == 0o755


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "rec") as d:
        (d / "x").write_text("1")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_unless_overwrite(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "old").write_text("old")
    with pytest.raises(ParityError, match="already exists"), atomic_dir(tmp_path / "rec"):
        pass
    with atomic_dir(tmp_path / "rec", overwrite=True) as d:
        (d / "new").write_text("new")
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_read_json_errors_are_one_line(tmp_path):
    with pytest.raises(ParityError, match="no such file"):
        read_json(tmp_path / "missing.json", "a snapshot")
    (tmp_path / "bad.json").write_bytes(b"\xff\x00")
    with pytest.raises(ParityError, match="not a snapshot"):
        read_json(tmp_path / "bad.json", "a snapshot")
    atomic_write_json(tmp_path / "ok.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "ok.json", "x") == {"a": [1, 2], "b": 1}
