"""``parity diff``: exit codes, table, --json, and bad input (exit 2, one line)."""

from __future__ import annotations

import json

import pytest

from parity.env import snapshot


@pytest.fixture(scope="module")
def snap_files(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    folder = tmp_path_factory.mktemp("snaps")
    snap = snapshot()
    a = folder / "a.json"
    a.write_text(json.dumps(snap))
    snap["packages"]["numpy"]["version"] = "0.0.1"
    snap["env_vars"]["OMP_NUM_THREADS"] = "3"
    b = folder / "b.json"
    b.write_text(json.dumps(snap))
    newer = folder / "newer.json"
    newer.write_text(json.dumps(dict(snap, schema="parity.snapshot/2")))
    return a, b, newer


def test_identical_exits_0(run_cli, tmp_path):
    # A fresh file: other tests in this process may have changed env vars since the fixture.
    path = tmp_path / "now.json"
    path.write_text(json.dumps(snapshot()))
    code, stdout, _ = run_cli("diff", path, "current")
    assert code == 0
    assert "identical" in stdout


def test_differences_exit_1_with_a_ranked_table(run_cli, snap_files):
    code, stdout, _ = run_cli("diff", snap_files[0], snap_files[1])
    assert code == 1
    assert stdout.index("numpy") < stdout.index("OMP_NUM_THREADS")  # high before medium
    assert "2 differences: 1 high, 1 medium, 0 low risk" in stdout


def test_json_is_one_document(run_cli, snap_files):
    code, stdout, _ = run_cli("diff", snap_files[0], snap_files[1], "--json")
    assert code == 1
    doc = json.loads(stdout)
    assert doc["identical"] is False
    assert [(i["name"], i["risk"]) for i in doc["items"]] == [("numpy", "high"), ("OMP_NUM_THREADS", "medium")]


def test_requirements_column(run_cli, snap_files, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=0.0.1\n")
    code, stdout, _ = run_cli("diff", snap_files[0], snap_files[1], "--requirements", req, "--json")
    assert code == 1
    (numpy,) = [i for i in json.loads(stdout)["items"] if i["name"] == "numpy"]
    assert numpy["declared"] == ">=0.0.1" and numpy["declared_allows"] is True


def _one_clean_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert "(fix: " in lines[0]
    return lines[0]


def test_missing_file_exits_2(run_cli, snap_files, tmp_path):
    code, stdout, stderr = run_cli("diff", tmp_path / "gone.json", snap_files[0])
    assert code == 2
    assert "gone.json: no such file" in _one_clean_line(stderr)
    assert stdout == ""


def test_not_a_snapshot_exits_2(run_cli, snap_files, tmp_path):
    other = tmp_path / "package.json"
    other.write_text('{"name": "left-pad"}')
    code, _, stderr = run_cli("diff", snap_files[0], other)
    assert code == 2
    assert "package.json: not a snapshot" in _one_clean_line(stderr)


def test_newer_schema_exits_2(run_cli, snap_files):
    code, _, stderr = run_cli("diff", snap_files[0], snap_files[2])
    assert code == 2
    assert "newer parity" in _one_clean_line(stderr)


def test_missing_requirements_exits_2(run_cli, snap_files, tmp_path):
    code, _, stderr = run_cli("diff", snap_files[0], snap_files[1], "--requirements", tmp_path / "req.txt")
    assert code == 2
    assert "req.txt" in _one_clean_line(stderr)


def test_current_against_current_is_identical(run_cli):
    code, stdout, _ = run_cli("diff", "current", "current", "--json")
    assert code == 0
    assert json.loads(stdout)["identical"] is True
