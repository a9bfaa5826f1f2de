"""`parity compare` / `parity verify` on the command line: exit codes, --json, --html, bad input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from parity.records.format import finalize_manifest

Make = Callable[..., Path]
X = torch.linspace(-1, 1, 12).reshape(3, 4)


def _layers(delta: float = 0.0) -> dict[str, torch.Tensor]:
    return {"lin#0/out": X.clone(), "act#0/out": X.relu() + delta}


def _one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parity: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_compare_pass_exit_0_and_terminal_report(make_record: Make, run_cli) -> None:
    code, out, _err = run_cli("compare", make_record("a", _layers()), make_record("b", _layers()))
    assert code == 0 and "PASS" in out and "Environment" in out


def test_compare_fail_exit_1_json_only_on_stdout(make_record: Make, run_cli) -> None:
    code, out, _err = run_cli("compare", make_record("a", _layers()), make_record("b", _layers(0.5)), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verdict"] == "FAIL" and doc["first_divergent_layer"] == "act#0/out"


def test_compare_html_is_written(make_record: Make, run_cli, tmp_path: Path) -> None:
    pytest.importorskip("parity.report.html")
    html = tmp_path / "report.html"
    code, _out, _err = run_cli("compare", make_record("a", _layers()), make_record("b", _layers(0.5)), "--html", html)
    assert code == 1 and html.read_text().lstrip().lower().startswith("<!doctype html")


def test_html_into_missing_folder_is_exit_2(make_record: Make, run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("compare", make_record("a", _layers()), make_record("b", _layers()),
                             "--html", tmp_path / "nope" / "r.html", "--json")
    _one_line_error(code, out, err, "nope")


def _shard(rec: Path) -> Path:
    return rec / "activations" / "00000.safetensors"


def test_truncated_shard_is_exit_2_naming_it(make_record: Make, run_cli) -> None:
    a = make_record("a", _layers())
    data = _shard(a).read_bytes()
    _shard(a).write_bytes(data[: len(data) // 2])
    code, out, err = run_cli("compare", a, make_record("b", _layers()))
    _one_line_error(code, out, err, "00000.safetensors", "truncated")


def test_flipped_byte_is_exit_2_naming_the_shard(make_record: Make, run_cli) -> None:
    a = make_record("a", _layers())
    data = bytearray(_shard(a).read_bytes())
    data[-3] ^= 0xFF
    _shard(a).write_bytes(bytes(data))
    code, out, err = run_cli("compare", a, make_record("b", _layers()))
    _one_line_error(code, out, err, "00000.safetensors", "sha256")


def test_deleted_file_is_exit_2(make_record: Make, run_cli) -> None:
    b = make_record("b", _layers())
    (b / "layers.json").unlink()
    code, out, err = run_cli("compare", make_record("a", _layers()), b)
    _one_line_error(code, out, err, "layers.json", "missing")


def test_future_format_is_exit_2(make_record: Make, run_cli) -> None:
    a = make_record("a", _layers())
    manifest = json.loads((a / "manifest.json").read_text())
    manifest["format_version"] = 99
    (a / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli("verify", a, "--json")
    _one_line_error(code, out, err, "manifest.json", "newer", "upgrade parity")


def test_not_a_record_is_exit_2(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("compare", tmp_path / "missing", tmp_path)
    _one_line_error(code, out, err, "missing")


def test_bad_tolerance_flag_is_exit_2(make_record: Make, run_cli) -> None:
    a = make_record("a", _layers())
    code, out, err = run_cli("verify", a, "--atol", "-1")
    _one_line_error(code, out, err, "--atol")


def test_verify_without_target_anywhere_is_exit_2(make_record: Make, run_cli) -> None:
    a = make_record("a", _layers())
    manifest = json.loads((a / "manifest.json").read_text())
    fields = {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version", "target")}
    finalize_manifest(a, fields)
    code, out, err = run_cli("verify", a)
    _one_line_error(code, out, err, "no target recorded", "TARGET")


def test_target_that_does_not_import_is_exit_2(make_record: Make, run_cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n\ndef build():\n    return None\n")
    code, out, err = run_cli("verify", make_record("a", _layers()), f"{broken}:build")
    _one_line_error(code, out, err, "broken.py")


def test_copy_of_a_record_compares_equal(make_record: Make, run_cli, tmp_path: Path) -> None:
    a = make_record("a", _layers())
    shutil.copytree(a, tmp_path / "copy")
    assert run_cli("compare", a, tmp_path / "copy", "--json")[0] == 0
