"""LLM-size records (issue 16): a decoder-only transformer from a transformers config with
random seeded weights, on a generation workload (prefill + decode steps with a KV cache,
benchmarks/llm_target.py), records and verifies; a planted weight change fails; the KV
cache in each call's output is recorded tensor by tensor; hooks keep no activation."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from parity.comparison import verify
from parity.records import read_record, record
from parity.records.capture import LayerCapture
from parity.records.writer import ShardWriter

REPO = Path(__file__).resolve().parents[2]
TARGET = str(REPO / "benchmarks" / "llm_target.py")
PROMPTS = ["hello world", "the cat sat on the mat", "parity", "big models in bounded memory"]


@pytest.fixture(scope="module")
def llm_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llm") / "rec"
    record(f"{TARGET}:build_tiny", inputs=PROMPTS, out=out, snapshot_env=False)
    return out


def test_generation_workload_records_every_call_and_the_kv_cache(llm_record: Path) -> None:
    rec = read_record(llm_record)
    keys = {e["key"]: e for e in rec.layers if e["batch"] == 0}
    # the causal LM runs once for the prefill and once per decode step
    assert {k.split("/")[0] for k in keys if k.startswith("lm#")} == {"lm#0", "lm#1", "lm#2", "lm#3"}
    assert "lm.model.layers.3.self_attn.q_proj#3/out" in keys
    prefill = keys["lm#0/out/past_key_values/layers/0/keys"]
    last = keys["lm#3/out/past_key_values/layers/3/values"]
    assert prefill["shape"] == [2, 2, 32, 32] and last["shape"] == [2, 2, 35, 32]  # 32 prompt + 3 decoded
    assert prefill["hash"] and prefill["stats"]["l2"] > 0


def test_generation_workload_verifies_pass(llm_record: Path) -> None:
    result = verify(llm_record, f"{TARGET}:build_tiny")
    assert result.verdict == "PASS", result.reason
    assert result.targeted_capture is None


def test_one_planted_weight_element_fails_at_its_layer(llm_record: Path) -> None:
    result = verify(llm_record, f"{TARGET}:build_tiny_planted")
    assert result.verdict == "FAIL"
    assert [p["name"] for p in result.assets["params"]] == ["lm.model.layers.1.self_attn.q_proj.weight"]
    first = str(result.first_divergent_layer)
    assert first.startswith("lm.model.layers.1."), first  # nothing before the changed layer diverges
    assert result.targeted_capture is not None and "lm.model.layers.1" in result.targeted_capture["layers"]


@pytest.mark.slow
def test_targeted_record_of_the_decoder_names_the_planted_layer(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    record(f"{TARGET}:build_tiny", inputs=PROMPTS, out=out, snapshot_env=False, capture="full",
           layers=["lm.model.layers.1"])
    result = verify(out, f"{TARGET}:build_tiny_planted")
    assert result.first_introducing_layer == "lm.model.layers.1.self_attn.q_proj#0/out"
    rows = {x["key"]: x for x in result.layers}
    # the attention block replays on A's KV cache (rebuilt as a DynamicCache) and contains the error
    assert rows["lm.model.layers.1.self_attn#0/out/0"]["contains"] == "lm.model.layers.1.self_attn.q_proj#0/out"
    assert not [n for n in result.notes if "replay failed" in n]


class _Holder:
    """A non-tensor output that holds an activation (as a KV cache or a model output does)."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


class _Producer(nn.Module):
    def forward(self, x: torch.Tensor) -> _Holder:
        return _Holder(x * 2)


class _Check(nn.Module):
    def forward(self, x: torch.Tensor, gone: Any) -> torch.Tensor:
        gc.collect()
        self.alive = gone() is not None
        return x + 1


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.produce, self.check = _Producer(), _Check()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        held = self.produce(x)
        y = held.t.sum(0)
        gone = weakref.ref(held.t)
        del held
        return self.check(y, gone)


@pytest.mark.parametrize("level", ["stats", "full"])
def test_hooks_hold_no_activation_after_its_call(tmp_path: Path, level: str) -> None:
    """Once the model drops an output, the capture does not keep it alive: an entry keeps
    a summary, never the object a module returned."""
    net = _Net()
    writer = ShardWriter(tmp_path, "activations", inline=True, direct=False)
    with torch.no_grad(), LayerCapture(net, level, writer) as hooks:
        net(torch.randn(4, 8))
    writer.close()
    assert net.check.alive is False
    assert any(e["key"] == "produce#0/out" and e["kind"] == "_Holder" for e in hooks.entries)


def test_a_recorded_dynamic_cache_comes_back_as_one_and_nothing_else_does() -> None:
    from transformers.cache_utils import DynamicCache

    from parity.records.flatten import rebuild, structure

    k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    cache = DynamicCache([(k, v), (k + 1, v + 1)])
    stored: dict[str, torch.Tensor] = {}

    def keep(path: str, t: torch.Tensor) -> str:
        stored[path] = t.clone()
        return path

    node = structure({"past_key_values": cache}, keep)
    assert node["dict"]["past_key_values"]["class"] == "DynamicCache"
    assert sorted(stored) == [f"/past_key_values/layers/{i}/{n}" for i in (0, 1) for n in ("keys", "values")]
    back = rebuild(node, stored.__getitem__)["past_key_values"]
    assert isinstance(back, DynamicCache) and torch.equal(back.layers[1].keys, k + 1)
    node["dict"]["past_key_values"]["class"] = "SomethingElse"  # only the allow-listed name is rebuilt
    assert isinstance(rebuild(node, stored.__getitem__)["past_key_values"], dict)


@pytest.mark.slow
def test_a_bigger_decoder_records_verifies_and_finds_the_planted_element(tmp_path: Path) -> None:
    """25 M parameters (100 MB), the same architecture and workload."""
    out = tmp_path / "rec"
    record(f"{TARGET}:build_small", inputs=PROMPTS[:2], out=out, snapshot_env=False)
    assert verify(out, f"{TARGET}:build_small").verdict == "PASS"
    bad = verify(out, f"{TARGET}:build_small_planted")
    assert bad.verdict == "FAIL" and str(bad.first_divergent_layer).startswith("lm.model.layers.1."), \
        bad.first_divergent_layer
