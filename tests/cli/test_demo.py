"""``parity demo`` bad output folders: exit 2, one line naming the path and the fix,
nothing touched. (The full run is in tests/demo/test_run.py.)"""

from __future__ import annotations


def test_refuses_a_folder_it_did_not_write(run_cli, tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    code, stdout, stderr = run_cli("demo", "-o", tmp_path)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and str(tmp_path) in stderr and "fix:" in stderr and "Traceback" not in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_refuses_a_file_and_a_missing_parent(run_cli, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, stderr = run_cli("demo", "-o", tmp_path / "f")
    assert code == 2 and "not a folder" in stderr and str(tmp_path / "f") in stderr
    code, _, stderr = run_cli("demo", "-o", tmp_path / "no" / "demo")
    assert code == 2 and "does not exist" in stderr and str(tmp_path / "no") in stderr
    assert not (tmp_path / "no").exists()
