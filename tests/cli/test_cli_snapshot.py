"""``parity snapshot``: output modes and bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import sys

from parity.env.snapshots import check_snapshot


def test_writes_a_snapshot_file_and_a_summary(run_cli, tmp_path):
    out = tmp_path / "env.json"
    code, stdout, stderr = run_cli("snapshot", "-o", out)
    assert code == 0, stderr
    snap = check_snapshot(json.loads(out.read_text()), str(out))
    assert snap["packages"]["torch"]["version"] == "2.13.0+cpu"
    assert "torch 2.13.0+cpu" in stdout
    assert f"wrote {out}" in stdout
    assert list(tmp_path.iterdir()) == [out]  # no temporary left behind


def test_json_prints_one_document_and_nothing_else(run_cli):
    code, stdout, _ = run_cli("snapshot", "--json")
    assert code == 0
    assert json.loads(stdout)["schema"] == "parity.snapshot/1"


def test_python_flag_snapshots_that_interpreter(run_cli):
    code, stdout, _ = run_cli("snapshot", "--python", sys.executable, "--json")
    assert code == 0
    assert json.loads(stdout)["meta"]["collected_by"] == "subprocess"


def _one_clean_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("parity: error: ")
    assert "(fix: " in lines[0]
    return lines[0]


def test_missing_interpreter_exits_2_and_writes_nothing(run_cli, tmp_path):
    out = tmp_path / "env.json"
    code, stdout, stderr = run_cli("snapshot", "--python", tmp_path / "nope" / "python", "-o", out)
    assert code == 2
    assert "no such interpreter" in _one_clean_line(stderr)
    assert str(tmp_path / "nope" / "python") in stderr
    assert stdout == ""
    assert not out.exists()


def test_interpreter_that_is_not_python_exits_2(run_cli, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho nope >&2\nexit 1\n")
    fake.chmod(0o755)
    code, _, stderr = run_cli("snapshot", "--python", fake)
    assert code == 2
    assert "not a Python interpreter" in _one_clean_line(stderr)


def test_output_folder_missing_exits_2(run_cli, tmp_path):
    code, _, stderr = run_cli("snapshot", "-o", tmp_path / "missing" / "env.json")
    assert code == 2
    assert "output folder does not exist" in _one_clean_line(stderr)


def test_plain_run_says_how_to_save(run_cli):
    code, stdout, _ = run_cli("snapshot")
    assert code == 0
    assert "not saved: add -o FILE" in stdout
