"""Issue 16, "stats that localise", on the real all-MiniLM-L6-v2: a localised change (one
element of an embedding row the inputs use, one element of a value/query weight) makes
a stats record verify FAIL at the layer a full record names, because the layers' linear
sketches prove the divergence where the 64 sampled elements and the summary stats agree.
Records without a sketch verify as before; identical re-runs and 1 vs 2 threads pass.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from parity.comparison import verify
from parity.comparison.result import FAIL, PASS
from parity.records import read_record, record
from parity.records.format import MANIFEST, finalize_manifest
from parity.records.stats import sample_indices

pytestmark = pytest.mark.slow

TEXTS = ["The Quick Brown Fox jumps.", "Paris is the Capital of France", "hello world", "GPUs and CPUs differ"]
PIPELINE = '''
import torch
from transformers import AutoModel, AutoTokenizer
from parity.target import Pipeline

def build():
    tok = AutoTokenizer.from_pretrained({model_dir!r})
    model = AutoModel.from_pretrained({model_dir!r}).eval()
    with torch.no_grad():
        {change}
    return Pipeline(model=model, preprocess=lambda texts: dict(tok(texts, padding=True, return_tensors="pt")),
                    postprocess=lambda out: out.last_hidden_state.mean(dim=1), example_inputs={texts!r},
                    batch_size=2, name="minilm")
'''
VALUE = "encoder.layer.2.attention.self.value"
QUERY = "encoder.layer.2.attention.self.query"


def _target(folder: Path, model_dir: Path, name: str, change: str = "pass") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(PIPELINE.format(model_dir=str(model_dir), change=change, texts=TEXTS))
    return f"{path}:build"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    """A's stats and full records (1 thread), and the stats one with its sketches taken out."""
    root = tmp_path_factory.mktemp("localise")
    target = _target(root, minilm_dir, "a")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {level: record(target, TEXTS, out=root / level, capture=level, batch_size=2, snapshot_env=False).path
               for level in ("stats", "full")}
    finally:
        torch.set_num_threads(before)
    out["no_sketch"] = _without_sketches(out["stats"], root / "no_sketch")
    return out


def _without_sketches(src: Path, dst: Path) -> Path:
    """A copy of a stats record as parity wrote it before sketches (no sketch, no l1)."""
    shutil.copytree(src, dst)
    layers = json.loads((dst / "layers.json").read_text())
    for e in layers:
        e.pop("sketch", None)
        (e.get("stats") or {}).pop("l1", None)
    (dst / "layers.json").write_text(json.dumps(layers))
    manifest = json.loads((dst / MANIFEST).read_text())
    finalize_manifest(dst, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})
    return dst


def _unsampled_channel(rec: Path, key: str, width: int) -> int:
    """An output channel no sampled element of ``key`` lies in (in any batch): only the
    sketch can see a change there."""
    hit = set()
    for e in read_record(rec).layers:
        if e["key"] == key:
            numel = 1
            for d in e["shape"]:
                numel *= d
            hit |= {i % width for i in sample_indices(numel, 0, 64)}
    return next(c for c in range(width) if c not in hit)


def _row(result, key: str) -> dict:  # type: ignore[no-untyped-def]
    return next(x for x in result.layers if x["key"] == key)


def _the_token(minilm_dir: Path) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    ids = tok(TEXTS)["input_ids"]
    the = tok.convert_tokens_to_ids("the")
    assert sum(row.count(the) for row in ids) >= 2  # the inputs use this embedding row
    return int(the)


def _cases(golden: dict[str, Path], minilm_dir: Path) -> dict[str, tuple[str, str]]:
    value_ch = _unsampled_channel(golden["stats"], f"{VALUE}#0/out", 384)
    query_ch = _unsampled_channel(golden["stats"], f"{QUERY}#0/out", 384)
    return {
        "embedding": (f"model.embeddings.word_embeddings.weight[{_the_token(minilm_dir)}, 5] += 0.01",
                      "embeddings.word_embeddings#0/out"),
        "value": (f"model.get_submodule({VALUE!r}).weight[{value_ch}, 7] += 0.01", f"{VALUE}#0/out"),
        "query": (f"model.get_submodule({QUERY!r}).weight[{query_ch}, 7] += 0.01", f"{QUERY}#0/out"),
    }


@pytest.mark.parametrize("case", ["embedding", "value", "query"])
def test_localised_change_fails_at_the_layer_full_capture_names(golden: dict[str, Path], minilm_dir: Path,
                                                                 tmp_path: Path, case: str) -> None:
    change, expected = _cases(golden, minilm_dir)[case]
    target_b = _target(tmp_path, minilm_dir, f"b_{case}", change)
    full = verify(golden["full"], target_b)
    stats = verify(golden["stats"], target_b)
    assert full.verdict == FAIL and full.first_divergent_layer == expected
    assert stats.verdict == FAIL, stats.reason
    assert stats.first_divergent_layer == full.first_divergent_layer
    row = _row(stats, expected)
    assert row["sketch"]["diverged"] and any(n.startswith("sketch: estimated relative L2") for n in row["notes"])
    assert row["metrics"]["mismatches"] == 0  # the sampled elements alone saw nothing here
    assert row["sketch"]["rel_l2"] > row["sketch"]["limit_rel_l2"] > 0
    # rel_l2 is the sketch's whole-tensor estimate over all batches (the sketch JSON keeps the worst batch)
    assert 0 < row["metrics"]["rel_l2"] <= row["sketch"]["rel_l2"] * (1 + 1e-9)
    # the same comparison without sketches (a record from before) does not name that layer
    old = verify(golden["no_sketch"], target_b)
    assert old.first_divergent_layer != expected and _row(old, expected)["sketch"] is None


def test_records_without_a_sketch_verify_as_before(golden: dict[str, Path], minilm_dir: Path, tmp_path: Path) -> None:
    r = verify(golden["no_sketch"], _target(tmp_path, minilm_dir, "same"))
    assert r.verdict == PASS, r.reason
    assert all(x["status"] == "match" and x["sketch"] is None for x in r.layers)


@pytest.mark.parametrize("threads", [1, 2])
def test_identical_rerun_and_other_thread_count_pass_with_sketches(golden: dict[str, Path], minilm_dir: Path,
                                                                   tmp_path: Path, threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        r = verify(golden["stats"], _target(tmp_path, minilm_dir, "same"))
    finally:
        torch.set_num_threads(before)
    assert r.verdict == PASS, r.reason
    assert all(x["status"] == "match" for x in r.layers) and len(r.layers) > 50
    assert all(not x["sketch"]["diverged"] for x in r.layers if x["sketch"] is not None)


def test_tiny_differences_everywhere_raise_no_sketch_alarm(golden: dict[str, Path], minilm_dir: Path,
                                                            tmp_path: Path) -> None:
    """Every weight scaled by 1 + 2e-7: no layer is bit-identical any more and the whole
    tensors stay far within tolerance in L2; the sketch judges every layer and raises no
    alarm. (A few sampled elements near zero do exceed atol in the last layers: those rows
    are the elementwise rule's, as full capture would show, never the sketch's.)"""
    change = "[p.mul_(1 + 2e-7) for p in model.parameters()]"
    r = verify(golden["stats"], _target(tmp_path, minilm_dir, "scaled", change))
    checked = [x for x in r.layers if x["sketch"] is not None]
    assert len(checked) > 50 and not any(x["sketch"]["diverged"] for x in checked)
    assert all(x["metrics"]["mismatches"] > 0 for x in r.layers if x["status"] == "diverged")
    assert max(x["sketch"]["rel_l2"] for x in checked) < 0.1 * min(x["sketch"]["limit_rel_l2"] for x in checked)
