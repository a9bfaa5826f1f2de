"""`parity record` end to end: JSON output, bad input -> exit 2, and real MiniLM runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from parity.records import layer_tensor, load_module_inputs, read_record

TINY = f"{Path(__file__).resolve().parents[1] / 'models.py'}:build_tiny_text"


def _assert_user_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parity: error:") and "Traceback" not in err
    assert all(n in lines[0] for n in needles) and "fix:" in lines[0]


def test_record_json(run_cli, tmp_path: Path) -> None:
    texts = tmp_path / "golden.txt"
    texts.write_text("first input\nsecond input\nthird\n")
    code, out, err = run_cli("record", TINY, "--inputs", texts, "-o", tmp_path / "golden", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["capture"] == "stats" and doc["batches"] == 2 and doc["inputs"]["count"] == 3
    rec = read_record(tmp_path / "golden")
    assert rec.manifest["target"] == TINY and rec.json("inputs.json")["source"] == str(texts)


def test_record_human_output(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("record", TINY, "-o", tmp_path / "g", "--capture", "full", "--batch-size", "3")
    assert code == 0 and "capture full: 3 inputs in 1 batches" in out


def test_target_that_does_not_import(run_cli, tmp_path: Path) -> None:
    bad = tmp_path / "serving.py"
    bad.write_text("import missing_dependency_zz\n")
    code, out, err = run_cli("record", f"{bad}:build", "-o", tmp_path / "g")
    _assert_user_error(code, out, err, str(bad), "ModuleNotFoundError")
    assert not (tmp_path / "g").exists()


def test_bad_inputs_file(run_cli, tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text("[1, 2\n")
    code, out, err = run_cli("record", TINY, "--inputs", bad, "-o", tmp_path / "g")
    _assert_user_error(code, out, err, f"{bad}:1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_inputs_the_model_cannot_take(run_cli, tmp_path: Path) -> None:
    loop = f"{Path(__file__).resolve().parents[1] / 'models.py'}:build_loop"
    rows = tmp_path / "in.jsonl"
    rows.write_text("[1, 2, 3]\n")  # LoopNet wants 8 features
    code, out, err = run_cli("record", loop, "--inputs", rows, "-o", tmp_path / "g")
    _assert_user_error(code, out, err, "model failed on batch 0")
    assert not (tmp_path / "g").exists()


def test_existing_output_is_kept(run_cli, tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "notes.txt").write_text("mine")
    code, out, err = run_cli("record", TINY, "-o", tmp_path / "g")
    _assert_user_error(code, out, err, "already exists")
    assert (tmp_path / "g" / "notes.txt").read_text() == "mine"


def test_bad_capture_flag(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("record", TINY, "-o", tmp_path / "g", "--capture", "all")
    assert code == 2 and "Traceback" not in err and "--capture" in err


@pytest.mark.slow
@pytest.mark.parametrize("capture", ["outputs", "stats", "full"])
def test_minilm_at_each_capture_level(run_cli, tmp_path: Path, minilm_dir: Path, capture: str) -> None:
    texts = tmp_path / "golden.txt"
    texts.write_text("A man is eating food.\nA plane is taking off.\nThe cat sits outside.\n")
    out_dir = tmp_path / capture
    code, _, err = run_cli("record", minilm_dir, "--inputs", texts, "-o", out_dir, "--capture", capture,
                           "--batch-size", "2")
    assert code == 0, err
    rec = read_record(out_dir)
    assert rec.capture == capture and rec.manifest["target_kind"] == "hf"
    assert "vocab.txt" in rec.assets["files"] and "encoder.layer.3.attention.self.query.weight" in rec.assets[
        "params"]
    assert rec.env["runtime"]["model"]["training_modules"] == []
    stages = rec.json("stages.json")["batches"][0]["stages"]
    assert rec.tensor("stages.safetensors", "0/preprocess/input_ids")[0, 0] == 101  # [CLS]
    assert "last_hidden_state" in stages["model"]["dict"]
    if capture == "outputs":
        assert not rec.has("layers.json")
        return
    keys = [e["key"] for e in rec.layers if e["batch"] == 0]
    assert keys[0].startswith("embeddings.") and "encoder.layer.3.output.dense#0/out" in keys
    assert keys.index("encoder.layer.3#0/out") < keys.index("encoder.layer.4#0/out")
    if capture == "full":
        entry = next(e for e in rec.layers if e["key"] == "encoder.layer.3#0/out" and e["batch"] == 1)
        args, kwargs = load_module_inputs(rec, entry["key"], batch=1)
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(minilm_dir), local_files_only=True).eval()
        with torch.no_grad():
            replay = model.encoder.layer[3](*args, **kwargs)
        replay = replay[0] if isinstance(replay, tuple) else replay
        assert torch.equal(replay, layer_tensor(rec, entry))
