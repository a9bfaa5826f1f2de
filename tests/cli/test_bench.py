"""`parity bench`: exit codes, -o, --json, --against, and every bad input (exit 2, one line)."""

from __future__ import annotations

import json

import pytest

SERVE = '''
import os, time
import torch
from parity.target import Pipeline

def build():
    torch.manual_seed(0)
    delay = float(os.environ.get("PLANTED_POST_DELAY", "0"))

    def post(out):
        if delay:
            time.sleep(delay)
        return out.mean(dim=1)

    return Pipeline(model=torch.nn.Linear(4, 2).eval(),
                    preprocess=lambda texts: torch.tensor([[float(len(t)), 1.0, 2.0, 3.0] for t in texts]),
                    postprocess=post, example_inputs=["a", "bb"], batch_size=2, name="serve")
'''
QUICK = ("--min-time", "0.1", "--min-iters", "10")


@pytest.fixture
def serve(tmp_path):
    path = tmp_path / "serve.py"
    path.write_text(SERVE)
    return f"{path}:build"


def _one_clear_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("parity: error:")
    for needle in needles:
        assert needle in lines[0]


def test_bench_writes_the_result_and_renders_a_table(run_cli, serve, tmp_path):
    out = tmp_path / "bench.json"
    code, stdout, _ = run_cli("bench", serve, *QUICK, "-o", out)
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "parity.bench/1" and doc["batch_size"] == 2
    for word in ("preprocess", "model", "postprocess", "end_to_end", "throughput"):
        assert word in stdout


def test_json_prints_one_document(run_cli, serve):
    code, stdout, _ = run_cli("bench", serve, *QUICK, "--threads", "1", "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["threads"]["torch"] == 1 and "comparison" not in doc


def test_against_a_baseline_adds_the_comparison(run_cli, serve, tmp_path):
    base = tmp_path / "base.json"
    assert run_cli("bench", serve, *QUICK, "-o", base)[0] == 0
    code, stdout, _ = run_cli("bench", serve, *QUICK, "--against", base, "--json")
    doc = json.loads(stdout)
    assert doc["comparison"]["schema"] == "parity.bench-comparison/1"
    assert code == (1 if doc["comparison"]["regression"] else 0)


def test_planted_postprocess_regression_exits_1_and_names_the_stage(run_cli, serve, tmp_path, monkeypatch):
    base = tmp_path / "base.json"
    assert run_cli("bench", serve, *QUICK, "-o", base)[0] == 0
    monkeypatch.setenv("PLANTED_POST_DELAY", "0.005")
    code, stdout, _ = run_cli("bench", serve, *QUICK, "--against", base)
    assert code == 1
    assert "REGRESSION" in stdout and "postprocess" in stdout


def test_corrupted_baseline_exits_2(run_cli, serve, tmp_path):
    bad = tmp_path / "base.json"
    bad.write_text("{not json")
    code, _, err = run_cli("bench", serve, *QUICK, "--against", bad)
    assert code == 2
    _one_clear_line(err, "base.json", "fix:")


def test_baseline_of_another_batch_size_is_refused_unless_forced(run_cli, serve, tmp_path):
    base = tmp_path / "base.json"
    assert run_cli("bench", serve, *QUICK, "-o", base)[0] == 0
    code, _, err = run_cli("bench", serve, *QUICK, "--batch-size", "3", "--against", base)
    assert code == 2
    _one_clear_line(err, "--batch-size 3", "--force")
    code, stdout, _ = run_cli("bench", serve, *QUICK, "--batch-size", "3", "--against", base, "--force", "--json")
    assert code in (0, 1)
    assert json.loads(stdout)["comparison"]["forced_mismatches"]


def test_baseline_of_another_model_is_refused(run_cli, serve, tmp_path):
    base = tmp_path / "base.json"
    assert run_cli("bench", serve, *QUICK, "-o", base)[0] == 0
    doc = json.loads(base.read_text())
    doc["model"]["class"] = "torchvision.models.ResNet"
    base.write_text(json.dumps(doc))
    code, _, err = run_cli("bench", serve, *QUICK, "--against", base)
    assert code == 2
    _one_clear_line(err, "not comparable", "ResNet", "--force")


def test_zero_inputs_exit_2(run_cli, serve, tmp_path):
    empty = tmp_path / "inputs.txt"
    empty.write_text("\n\n")
    code, _, err = run_cli("bench", serve, *QUICK, "--inputs", empty)
    assert code == 2
    _one_clear_line(err, "inputs.txt")


def test_output_into_a_missing_folder_exits_2_before_running(run_cli, serve, tmp_path):
    out = tmp_path / "nope" / "bench.json"
    code, _, err = run_cli("bench", serve, *QUICK, "-o", out)
    assert code == 2
    _one_clear_line(err, "nope", "-o")
    assert not out.parent.exists()


@pytest.mark.parametrize(("flag", "value"), [("--batch-size", "0"), ("--threads", "0"), ("--min-iters", "0"),
                                             ("--min-time", "-1"), ("--max-slowdown", "-5")])
def test_bad_numbers_exit_2_naming_the_flag(run_cli, serve, tmp_path, flag, value):
    base = tmp_path / "base.json"
    assert run_cli("bench", serve, *QUICK, "-o", base)[0] == 0
    args = ("--against", base, "--force") if flag == "--max-slowdown" else ()
    code, _, err = run_cli("bench", serve, *QUICK, flag, value, *args)
    assert code == 2
    _one_clear_line(err, flag)


def test_unknown_target_exits_2(run_cli, tmp_path):
    code, _, err = run_cli("bench", f"{tmp_path / 'missing.py'}:build", *QUICK)
    assert code == 2
    _one_clear_line(err, "missing.py")
