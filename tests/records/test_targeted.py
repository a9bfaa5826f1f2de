"""Targeted capture (issue 16): ``--capture full --layers PATTERN`` stores full tensors and
replay inputs for the selected modules only, and a stats verify that diverges prints the
command that makes such a record on machine A, whose verify names the introducing layer."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

from parity.records.capture import layer_selector

TARGET = '''
import sys
import torch
from torch import nn
sys.path.insert(0, {tests!r})
import models
from parity.target import Pipeline


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.attn = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class Stack(nn.Module):
    def __init__(self, width=16, depth=4):
        super().__init__()
        self.embed = nn.Embedding(259, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, 3)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(1))


def build():
    torch.manual_seed(0)
    model = Stack().eval()
    with torch.no_grad():
        model.blocks[2].mlp[0].weight[0, 0] += {delta}
    return Pipeline(model=model, preprocess=models.byte_tokenize, batch_size=2)
'''

TESTS = str(Path(__file__).resolve().parents[1])


def _target(tmp_path: Path, name: str, delta: float) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(TARGET.format(tests=TESTS, delta=delta))
    return f"{name}.py:build"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inputs.txt").write_text("a cat\nthe dog sat\nhello world\nparity\n")
    return tmp_path


def _verify(run_cli: Any, rec: str, target: str) -> dict[str, Any]:
    code, out, err = run_cli("verify", rec, target, "--json")
    assert code == 1, (code, err)
    return json.loads(out)


def test_stats_divergence_suggests_targeted_record_that_names_the_introducing_layer(
        workdir: Path, run_cli: Any) -> None:
    a, b = _target(workdir, "model_a", 0.0), _target(workdir, "model_b", 0.5)
    assert run_cli("record", a, "--inputs", "inputs.txt", "-o", "rec")[0] == 0
    stats = _verify(run_cli, "rec", b)
    assert stats["first_divergent_layer"] == "blocks.2.mlp.0#0/out"
    assert stats["first_introducing_layer"] is None  # stats cannot replay
    suggestion = stats["targeted_capture"]
    assert suggestion["layers"] == ["blocks.1", "blocks.2"]
    words = shlex.split(suggestion["command"])
    assert words[:3] == ["parity", "record", a] and words[words.index("--inputs") + 1] == "inputs.txt"
    assert words[words.index("--capture") + 1] == "full"

    # The terminal report prints the same command, whole.
    code, text, _ = run_cli("verify", "rec", b)
    assert code == 1 and suggestion["command"] in text.replace("\n", " ")

    code, _, err = run_cli(*words[1:])  # on machine A
    assert code == 0, err
    out = words[words.index("-o") + 1]
    targeted = _verify(run_cli, out, b)
    assert targeted["first_introducing_layer"] == "blocks.2.mlp.0#0/out"
    assert targeted["targeted_capture"] is None
    assert any("--layers blocks.1 blocks.2 selects" in n for n in targeted["notes"])
    intro = {x["key"]: x["introduced"] for x in targeted["layers"] if x["status"] == "diverged"}
    assert intro["blocks.2.mlp.0#0/out"] is True
    assert intro["blocks.2.mlp.2#0/out"] is False  # inherits it


def test_targeted_record_holds_full_tensors_only_for_the_selected_modules(workdir: Path, run_cli: Any) -> None:
    a = _target(workdir, "model_a", 0.0)
    code, out, err = run_cli("record", a, "--inputs", "inputs.txt", "--capture", "full", "--layers", "blocks.1",
                             "--layers", "head", "-o", "rec", "--json")
    assert code == 0, err
    assert json.loads(out)["full_layers"] == ["blocks.1", "head"]
    rec = workdir / "rec"
    manifest = json.loads((rec / "manifest.json").read_text())
    assert manifest["capture"] == "stats" and manifest["full_layers"] == ["blocks.1", "head"]
    full, sampled = set(), set()
    for e in json.loads((rec / "layers.json").read_text()):
        if e["kind"] != "tensor":
            continue
        with safe_open(str(rec / e["shard"]), framework="pt") as f:
            stored = list(f.get_slice(e["tensor"]).get_shape())
        numel = 1
        for d in e["shape"]:
            numel *= d
        (full if stored == e["shape"] and numel > 64 else sampled).add(e["module"])
    selected = {"blocks.1", "blocks.1.attn", "blocks.1.mlp", "blocks.1.mlp.0", "blocks.1.mlp.1",
                "blocks.1.mlp.2", "head"}
    assert full == selected - {"head"}  # head's output (2x3) is smaller than a sample: stored whole either way
    assert "blocks.0.attn" in sampled and "blocks.2.mlp.0" in sampled and "embed" in sampled
    calls = json.loads((rec / "module_inputs.json").read_text())
    assert {c["module"] for c in calls} == selected


def test_layers_that_match_nothing_fail_before_recording(workdir: Path, run_cli: Any) -> None:
    a = _target(workdir, "model_a", 0.0)
    code, _, err = run_cli("record", a, "--inputs", "inputs.txt", "--capture", "full", "--layers", "encoder.*",
                           "-o", "rec")
    assert code == 2 and "matches no module" in err and "blocks" in err
    assert not (workdir / "rec").exists()


def test_layer_selector_selects_a_module_and_everything_inside_it() -> None:
    selected = layer_selector(["encoder.layer.3"])
    assert selected("encoder.layer.3") and selected("encoder.layer.3.attention.self.query")
    assert selected("_orig_mod.encoder.layer.3.output")  # wrapper prefixes do not count
    assert not selected("encoder.layer.30") and not selected("encoder.layer") and not selected("")
    assert layer_selector(["*"])("") and layer_selector(["encoder.layer.[12]"])("encoder.layer.2.x")


def test_targeted_record_compares_with_a_plain_stats_record(workdir: Path) -> None:
    """Selected modules hold whole tensors on one side, samples on the other: compared at
    the sample's positions, never as a shape mismatch."""
    from parity.comparison import compare
    from parity.records import record

    a, b = _target(workdir, "model_a", 0.0), _target(workdir, "model_b", 0.5)
    prompts = ["a cat", "the dog sat", "hello world", "parity"]
    record(a, inputs=prompts, out=workdir / "a", snapshot_env=False, capture="full", layers=["blocks.2"])
    record(a, inputs=prompts, out=workdir / "same", snapshot_env=False)
    record(b, inputs=prompts, out=workdir / "b", snapshot_env=False)
    assert compare(workdir / "a", workdir / "same").verdict == "PASS"
    for x, y in (("a", "b"), ("b", "a")):
        result = compare(workdir / x, workdir / y)
        assert result.verdict == "FAIL" and result.first_divergent_layer == "blocks.2.mlp.0#0/out"
        row = next(r for r in result.layers if r["key"] == "blocks.2.mlp.0#0/out")
        assert row["metrics"]["shape_a"] == row["metrics"]["shape_b"]  # both the 64-element sample


def test_targeted_record_over_its_size_limit_says_to_select_fewer_modules(workdir: Path, run_cli: Any) -> None:
    a = _target(workdir, "model_a", 0.0)
    code, _, err = run_cli("record", a, "--inputs", "inputs.txt", "--capture", "full", "--layers", "blocks.*",
                           "--max-size", "540K", "-o", "rec")
    assert code == 2 and "select fewer modules with --layers" in err
    assert not (workdir / "rec").exists()


def test_suggested_blocks_never_wrap_the_whole_model() -> None:
    from parity.comparison.targeting import _before, block_of

    assert block_of("encoder.layer.3.attention.self.query") == "encoder.layer.3"
    assert block_of("lm.model.layers.11.mlp.up_proj") == "lm.model.layers.11"
    assert block_of("lm.model.embed_tokens") == "lm.model.embed_tokens" and block_of("") == ""
    order = ["lm.model.embed_tokens", "lm.model.rotary_emb", "lm.model.layers.0", "lm.model", "lm",
             "lm.model.layers.1"]
    assert _before(order, "lm.model.layers.1", 2) == ["lm.model.rotary_emb", "lm.model.layers.0"]  # not lm.model, lm
    assert _before(order, "lm.model.layers.0", 1) == ["lm.model.rotary_emb"]


MINILM_TARGET = '''
import torch
from parity.target import load_target


def build():
    return load_target({model!r}).pipeline


def planted():
    pipe = load_target({model!r}).pipeline
    with torch.no_grad():
        pipe.model.encoder.layer[2].attention.self.query.weight[3, 5] += 0.01
    return pipe
'''


@pytest.mark.slow
def test_real_minilm_qkv_element_named_from_the_suggested_targeted_record(tmp_path: Path, minilm_dir: Path) -> None:
    """One element of a query weight of the real MiniLM: the stats verify suggests the blocks,
    the targeted record made from that suggestion names the query projection."""
    from parity.comparison import verify
    from parity.records import record

    (tmp_path / "mini.py").write_text(MINILM_TARGET.format(model=str(minilm_dir)))
    a, b = f"{tmp_path / 'mini.py'}:build", f"{tmp_path / 'mini.py'}:planted"
    prompts = ["a cat sat on the mat", "parity checks models", "hello world", "the quick brown fox"]
    record(a, inputs=prompts, out=tmp_path / "stats", snapshot_env=False)
    stats = verify(tmp_path / "stats", b)
    assert stats.verdict == "FAIL" and str(stats.first_divergent_layer).startswith("encoder.layer.2.")
    suggested = stats.targeted_capture
    assert suggested is not None and suggested["layers"] == ["encoder.layer.1", "encoder.layer.2"]
    record(a, inputs=prompts, out=tmp_path / "targeted", snapshot_env=False, capture="full",
           layers=suggested["layers"])
    targeted = verify(tmp_path / "targeted", b)
    assert targeted.first_introducing_layer == "encoder.layer.2.attention.self.query#0/out"


def test_targeted_layers_that_only_inherit_suggest_the_blocks_before_them(workdir: Path) -> None:
    from parity.comparison import verify
    from parity.records import record

    a, b = _target(workdir, "model_a", 0.0), _target(workdir, "model_b", 0.5)
    record(a, inputs=["a cat", "the dog sat"], out=workdir / "late", snapshot_env=False, capture="full",
           layers=["blocks.3"])
    result = verify(workdir / "late", b)
    assert result.first_introducing_layer is None
    assert {r["introduced"] for r in result.layers if r["module"] == "blocks.3.attn"} == {False}
    assert result.targeted_capture is not None and result.targeted_capture["layers"] == ["blocks.1", "blocks.2"]
    assert "inherit" in result.targeted_capture["reason"]
