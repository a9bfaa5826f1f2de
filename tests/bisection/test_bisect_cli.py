"""``parity bisect`` on the command line: output, exit codes and every bad input.

(CLI tests for src/parity/cli/bisect.py live here, next to the tiny-wheel fixtures.)
"""

from __future__ import annotations

import json
import sys

from tinywheels import build_wheel, make_good_venv, write_snapshot


def _common(wheels, tmp_path) -> list[str]:
    return ["--find-links", str(wheels), "--no-index", "--cache-dir", str(tmp_path / "cache")]


def test_json_output_names_culprit_trials_and_reproduce_line(run_cli, sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({"pkg-06"})
    code, out, err = run_cli("bisect", "--good", good, "--bad", bad, *_common(wheels, tmp_path), "--json",
                             "--", "python", oracle_script, "pkg-06")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["schema"] == "parity.bisect/1" and doc["status"] == "found"
    assert doc["culprits"] == [{"name": "pkg-06", "good": "1.0", "bad": "2.0", "change": "changed"}]
    assert doc["n_trials"] == len(doc["trials"]) <= 6
    assert {"bad_side", "mode", "verdict", "seconds", "packages"} <= set(doc["trials"][0])
    assert doc["reproduce"] and "\n" not in doc["reproduce"]
    assert "trial" in err, "progress lines go to stderr"


def test_terminal_output(run_cli, sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({"pkg-14"})
    code, out, _ = run_cli("bisect", "--good", good, "--bad", bad, *_common(wheels, tmp_path),
                           "--", "python", oracle_script, "pkg-14")
    assert code == 1
    assert "pkg-14" in out and "reproduce trial" in out and "overlay" in out


def test_reproduce_line_reproduces_the_decisive_trial(run_cli, sixteen, wheels, oracle_script, tmp_path) -> None:
    import subprocess

    good, bad = sixteen({"pkg-01"})
    _, out, _ = run_cli("bisect", "--good", good, "--bad", bad, *_common(wheels, tmp_path), "--json",
                        "--", "python", oracle_script, "pkg-01")
    line = json.loads(out)["reproduce"]
    assert subprocess.run(["sh", "-c", line], check=False).returncode == 1


def test_no_differences_exits_0_with_a_message(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "1.0"})
    code, out, _ = run_cli("bisect", "--good", a, "--bad", b, "--", "true")
    assert code == 0 and "nothing to bisect" in out


def test_different_python_versions_explained_then_allowed(run_cli, tmp_path, wheels, oracle_script) -> None:
    build_wheel(wheels, "tok", "1.0")
    build_wheel(wheels, "tok", "2.0", "BROKEN = True\n")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "2.0"}, python=str(python), python_version="3.8.18")
    args = ["bisect", "--good", good, "--bad", bad, *_common(wheels, tmp_path)]
    code, out, err = run_cli(*args, "--", "python", oracle_script, "tok")
    assert code == 2 and out == ""
    assert "Python 3.8" in err and "--allow-python-mismatch" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = run_cli(*args, "--allow-python-mismatch", "--", "python", oracle_script, "tok")
    assert code == 1 and "warning" in out and "Python 3.8" in out


def test_oracle_command_not_found_exits_2(run_cli, sixteen, wheels, tmp_path) -> None:
    good, bad = sixteen(set())
    code, _, err = run_cli("bisect", "--good", good, "--bad", bad, *_common(wheels, tmp_path),
                           "--", "no-such-oracle-command-xyz")
    assert code == 2 and "no-such-oracle-command-xyz" in err and "not found" in err and "fix:" in err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_crashing_oracle_exits_2_and_blames_nothing(run_cli, sixteen, wheels, tmp_path) -> None:
    good, bad = sixteen({"pkg-00"})
    code, out, _ = run_cli("bisect", "--good", good, "--bad", bad, *_common(wheels, tmp_path), "--json",
                           "--", sys.executable, "-c", "raise SystemExit(3)")
    doc = json.loads(out)
    assert code == 2 and doc["status"] == "undetermined" and doc["culprits"] == []
    assert "could not judge" in doc["reason"]


def test_missing_snapshot_file(run_cli, tmp_path) -> None:
    code, _, err = run_cli("bisect", "--good", tmp_path / "nope.json", "--bad", tmp_path / "nope.json", "--", "true")
    assert code == 2 and "nope.json" in err and "Traceback" not in err


def test_unknown_oracle_spec(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    code, _, err = run_cli("bisect", "--good", a, "--bad", b, "--oracle", "pytest:foo")
    assert code == 2 and "--oracle pytest:foo" in err and "verify:" in err


def test_verify_oracle_on_a_folder_that_is_no_record(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    code, _, err = run_cli("bisect", "--good", a, "--bad", b, "--oracle", f"verify:{tmp_path}")
    assert code == 2 and "not a record directory" in err


def test_bench_oracle_baseline_without_target(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    (tmp_path / "base.json").write_text("{}")
    code, _, err = run_cli("bisect", "--good", a, "--bad", b, "--oracle", f"bench:{tmp_path / 'base.json'}")
    assert code == 2 and "base.json" in err and "not a bench result" in err


def test_no_oracle_and_no_side_is_a_record(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    code, _, err = run_cli("bisect", "--good", a, "--bad", b)
    assert code == 2 and "no oracle" in err


def test_both_oracle_and_command(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    code, _, err = run_cli("bisect", "--good", a, "--bad", b, "--oracle", f"verify:{tmp_path}", "--", "true")
    assert code == 2 and "keep one" in err


def test_missing_find_links_folder(run_cli, sixteen, tmp_path) -> None:
    good, bad = sixteen(set())
    code, _, err = run_cli("bisect", "--good", good, "--bad", bad, "--find-links", tmp_path / "nowhere", "--", "true")
    assert code == 2 and "--find-links" in err and "nowhere" in err


def test_not_a_snapshot(run_cli, tmp_path) -> None:
    (tmp_path / "a.json").write_text("[1, 2]")
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    code, _, err = run_cli("bisect", "--good", tmp_path / "a.json", "--bad", b, "--", "true")
    assert code == 2 and "a.json" in err and "Traceback" not in err


def test_cache_dir_that_is_a_file(run_cli, sixteen, wheels, tmp_path) -> None:
    good, bad = sixteen(set())
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli("bisect", "--good", good, "--bad", bad, "--cache-dir", tmp_path / "afile", "--", "true")
    assert code == 2 and "--cache-dir" in err and "afile" in err and "Traceback" not in err


def test_runs_and_timeout_must_be_positive(run_cli, tmp_path) -> None:
    a = write_snapshot(tmp_path / "a.json", {"x": "1.0"})
    b = write_snapshot(tmp_path / "b.json", {"x": "2.0"})
    code, _, err = run_cli("bisect", "--good", a, "--bad", b, "--runs", "0", "--", "true")
    assert code == 2 and "--runs 0" in err
    code, _, err = run_cli("bisect", "--good", a, "--bad", b, "--timeout", "-1", "--", "true")
    assert code == 2 and "--timeout" in err
