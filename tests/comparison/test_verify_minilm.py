"""Acceptance of issue 4 (compare side) on the real all-MiniLM-L6-v2 sentence encoder.

A is recorded once per capture level (module scope); each test builds a B that differs
in one way, through a pipeline file written in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from record_targets import recorded_target

from parity.comparison import verify
from parity.comparison.result import FAIL, PASS
from parity.records import record

pytestmark = pytest.mark.slow

TEXTS = ["The Quick Brown Fox jumps.", "Paris is the Capital of France", "hello world", "GPUs and CPUs differ"]

PIPELINE = '''
import torch
from transformers import AutoModel, AutoTokenizer
from parity.target import Pipeline

MODEL_DIR = {model_dir!r}

def build():
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModel.from_pretrained(MODEL_DIR).eval()
{change}
    return Pipeline(
        model=model,
        preprocess=lambda texts: dict(tok(texts, padding=True, return_tensors="pt")),
        postprocess=lambda out: out.last_hidden_state.mean(dim=1),
        assets=[MODEL_DIR], example_inputs={texts!r}, batch_size=2, name="minilm",
    )
'''


def pipeline_file(folder: Path, model_dir: Path, change: str = "", name: str = "serving") -> str:
    """A TARGET spec for MiniLM from ``model_dir``; ``change`` runs on ``model`` before returning."""
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"    {line}\n" for line in change.splitlines()) or "    pass\n"
    path = folder / f"{name}.py"
    path.write_text(PIPELINE.format(model_dir=str(model_dir), change=body.rstrip("\n"), texts=TEXTS))
    return f"{path}:build"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    """A's records of MiniLM at every capture level (threads pinned to 1, see the threads test)."""
    root = tmp_path_factory.mktemp("golden")
    target = pipeline_file(root, minilm_dir)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {level: record(target, TEXTS, out=root / level, capture=level, batch_size=2).path
                for level in ("outputs", "stats", "full")}
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("level", ["outputs", "stats", "full"])
def test_same_model_passes_with_zero_layer_mismatches(golden: dict[str, Path], level: str) -> None:
    r = verify(golden[level], recorded_target(golden[level]))
    assert r.verdict == PASS, r.reason
    assert all(s["status"] == "match" for s in r.stages)
    if level != "outputs":
        assert len(r.layers) > 50 and all(x["status"] == "match" for x in r.layers)
        assert sum((x["metrics"] or {}).get("mismatches", 0) for x in r.layers) == 0
        assert sum(1 for x in r.layers if x["metrics"]) > 50
    assert r.predictions is not None and r.predictions["kind"] == "embedding"
    assert r.predictions["cosine"] == pytest.approx(1.0)


@pytest.mark.parametrize("level", ["stats", "full"])
def test_threads_1_in_a_vs_2_in_b_passes(golden: dict[str, Path], level: str) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        r = verify(golden[level], recorded_target(golden[level]))
    finally:
        torch.set_num_threads(before)
    assert r.verdict == PASS, r.reason
    assert any(f["code"] == "threads" and f["severity"] == "info" for f in r.runtime)


QUERY = "encoder.layer.3.attention.self.query"


def test_perturbed_weight_fails_in_layer_3_and_names_the_parameter(golden: dict[str, Path], minilm_dir: Path,
                                                                    tmp_path: Path) -> None:
    change = f"with torch.no_grad():\n    model.get_submodule({QUERY!r}).weight[0, 0] += 1e-3"
    r = verify(golden["full"], pipeline_file(tmp_path, minilm_dir, change))
    assert r.verdict == FAIL and r.exit_code == 1
    assert r.first_divergent_layer is not None and r.first_divergent_layer.startswith("encoder.layer.3.")
    assert [p["name"] for p in r.assets["params"]] == [f"{QUERY}.weight"]
    assert r.first_introducing_layer == f"{QUERY}#0/out"
    later = [x for x in r.layers if x["status"] == "diverged" and x["key"].startswith(("encoder.layer.4.", "encoder.layer.5."))]
    assert later and all(x["introduced"] is False for x in later)
    assert len(r.error_growth) > 1
    cause = r.probable_cause
    assert cause is not None and cause["kind"] == "weight" and cause["subject"] == f"{QUERY}.weight"
    assert cause["confidence"] == "high" and f"{QUERY}#0/out" in cause["summary"]


DENSE = "encoder.layer.3.intermediate.dense"


def test_changed_weight_in_a_nested_module_only_that_module_introduces(golden: dict[str, Path], minilm_dir: Path,
                                                                        tmp_path: Path, run_cli) -> None:
    change = f"with torch.no_grad():\n    model.get_submodule({DENSE!r}).weight[5, 7] += 0.05"
    code, out, err = run_cli("verify", golden["full"], pipeline_file(tmp_path, minilm_dir, change), "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["first_introducing_layer"] == f"{DENSE}#0/out"
    assert [x["key"] for x in doc["layers"] if x["introduced"] is True] == [f"{DENSE}#0/out"]
    containers = {x["module"]: x for x in doc["layers"] if x["contains"]}
    for module in ("encoder.layer.3.intermediate", "encoder.layer.3", "encoder"):
        assert containers[module]["contains"] == f"{DENSE}#0/out" and containers[module]["introduced"] is None
    assert doc["probable_cause"]["kind"] == "weight" and doc["probable_cause"]["subject"] == f"{DENSE}.weight"


def test_perturbed_weight_at_stats_capture_localises_without_replay(golden: dict[str, Path], minilm_dir: Path,
                                                                     tmp_path: Path) -> None:
    change = f"with torch.no_grad():\n    model.get_submodule({QUERY!r}).weight[0, 0] += 1e-3"
    r = verify(golden["stats"], pipeline_file(tmp_path, minilm_dir, change))
    assert r.verdict == FAIL and r.first_divergent_layer.startswith("encoder.layer.3.")
    assert r.first_introducing_layer is None and any("--capture full" in n for n in r.notes)


def test_training_mode_fails_at_a_dropout_and_names_it(golden: dict[str, Path], minilm_dir: Path,
                                                       tmp_path: Path) -> None:
    r = verify(golden["full"], pipeline_file(tmp_path, minilm_dir, "model.train()"))
    assert r.verdict == FAIL
    finding = next(f for f in r.runtime if f["code"] == "training_mode")
    assert "Dropout" in finding["message"] and "eval()" in finding["message"]
    first = next(x for x in r.layers if x["key"] == r.first_divergent_layer)
    assert first["type"] == "Dropout", first
    cause = r.probable_cause
    assert cause is not None and cause["kind"] == "eval_mode" and cause["confidence"] == "high"
    assert "model.eval()" in cause["summary"] and cause["subject"] == first["module"]


def test_changed_tokenizer_asset_fails_at_preprocess(golden: dict[str, Path], minilm_dir: Path,
                                                     tmp_path: Path, run_cli) -> None:
    copy = tmp_path / "b" / minilm_dir.name
    shutil.copytree(minilm_dir, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    tok = json.loads((copy / "tokenizer.json").read_text())
    tok["normalizer"]["lowercase"] = False
    (copy / "tokenizer.json").write_text(json.dumps(tok))
    r = verify(golden["full"], pipeline_file(tmp_path, copy))
    assert r.verdict == FAIL and r.first_divergent_stage == "preprocess"
    changed = {Path(f["path"]).name for f in r.assets["files"]}
    assert {"tokenizer_config.json", "tokenizer.json"} <= changed
    stage = next(s for s in r.stages if s["stage"] == "preprocess")
    assert any("tokenizer_config.json" in s for s in stage["suspects"])
    rows = stage["rows"]
    ids = [row for row in rows if row["name"] == "input_ids"]
    assert ids and ids[0]["a"] != ids[0]["b"] and ids[0]["positions"]
    code, out, err = run_cli("verify", golden["full"], pipeline_file(tmp_path, copy), "--json")
    assert code == 1, err
    cause = json.loads(out)["probable_cause"]
    assert cause["kind"] == "asset" and Path(cause["subject"]).name == "tokenizer_config.json"
    assert cause["confidence"] == "high" and "tokenizer_config.json" in cause["summary"]
    code, out, err = run_cli("verify", golden["full"], pipeline_file(tmp_path, copy))
    assert out.lstrip().startswith("Probable cause: tokenizer_config.json changed"), out[:300]


def test_other_architecture_fails_listing_missing_layers(golden: dict[str, Path], minilm_dir: Path,
                                                         tmp_path: Path, run_cli) -> None:
    change = "model.encoder.layer = model.encoder.layer[:4]"
    code, out, err = run_cli("verify", golden["stats"], pipeline_file(tmp_path, minilm_dir, change), "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["verdict"] == "FAIL"
    assert any(k.startswith("encoder.layer.5.") for k in doc["only_a"])
    assert "do not exist in B" in doc["reason"]
