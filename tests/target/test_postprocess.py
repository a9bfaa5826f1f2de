"""``postprocess(output, inputs)``: postprocess sees what the model was fed, so masked
mean pooling is a plain function (issue 13 #7); the one-argument form still works."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from parity.benchmark import bench
from parity.records import record
from parity.target import Pipeline, load_target
from parity.target.pipeline import postprocess_caller

SHORT = "A man is eating food."
LONG = ("A man is eating a piece of bread at a long wooden table in a small kitchen, "
        "while his two children play with a ball in the garden outside the open window.")


def masked_mean(output, inputs):
    """Mean of the token embeddings over real tokens only (padding excluded)."""
    hidden = output.last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def plain_mean(output):
    return output.last_hidden_state.mean(dim=1)


def _post(fn):
    return postprocess_caller(fn)(10, {"mask": 1})


def test_forms_detected_by_signature() -> None:
    assert _post(lambda out: out + 1) == 11
    assert _post(lambda out, inputs: (out, inputs)) == (10, {"mask": 1})
    assert _post(lambda out, dim=1: out * dim) == 10  # an option, not the inputs
    assert _post(lambda out, inputs=None: (out, inputs)) == (10, {"mask": 1})
    assert _post(lambda *args: args) == (10, {"mask": 1})
    assert _post(functools.partial(lambda scale, out, inputs: (scale * out, inputs), 2)) == (20, {"mask": 1})
    assert _post(abs) == 10  # no signature: the original one-argument call

    class Pool:
        def __call__(self, output, inputs):
            return output, inputs

    assert _post(Pool()) == (10, {"mask": 1})
    assert Pipeline(model=abs).run_postprocess(5, None) == 5
    assert Pipeline(model=abs, postprocess=lambda o, i: o * i).run_postprocess(5, 3) == 15


def _first_postprocess_row(rec: Path) -> torch.Tensor:
    with safe_open(str(rec / "stages.safetensors"), "pt") as f:
        (name,) = [k for k in f.keys() if k.startswith("0/postprocess")]  # noqa: SIM118
        return f.get_tensor(name)[0]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


@pytest.mark.slow
def test_masked_pooling_on_minilm_is_the_same_alone_and_padded(tmp_path: Path, minilm_dir: Path) -> None:
    pipeline = load_target(str(minilm_dir)).pipeline
    rows = {}
    for label, post in (("masked", masked_mean), ("plain", plain_mean)):
        pipeline.postprocess = post
        for inputs in ([SHORT], [SHORT, LONG]):
            out = tmp_path / f"{label}-{len(inputs)}"
            record(pipeline, inputs, out=out, capture="outputs", batch_size=2, snapshot_env=False)
            rows[label, len(inputs)] = _first_postprocess_row(out)
    assert _cosine(rows["masked", 1], rows["masked", 2]) > 0.9999
    # The one-argument form still runs; it counts the padding, which is why the change exists.
    assert _cosine(rows["plain", 1], rows["plain", 2]) < 0.99


@pytest.mark.slow
def test_bench_passes_the_model_inputs_to_postprocess(minilm_dir: Path) -> None:
    pipeline = load_target(str(minilm_dir)).pipeline
    seen = []

    def post(output, inputs):
        seen.append(inputs["attention_mask"].shape)
        return masked_mean(output, inputs)

    pipeline.postprocess = post
    result = bench(pipeline, [SHORT, LONG], batch_size=2, min_time=0.0, min_iters=2, max_warmup=2)
    assert "postprocess" in result.measurement.samples
    assert seen and all(shape[0] == 2 for shape in seen)


SERVING = '''
from parity import Pipeline
from parity.target import load_target


def mean_pool(output, inputs):
    hidden = output.last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def build():
    base = load_target({folder!r}).pipeline
    return Pipeline(model=base.model, preprocess=base.preprocess, postprocess=mean_pool,
                    assets=base.assets, batch_size=2, name="minilm-mean")
'''


@pytest.mark.slow
def test_record_then_verify_a_two_argument_postprocess(tmp_path: Path, minilm_dir: Path) -> None:
    (tmp_path / "serving.py").write_text(SERVING.format(folder=str(minilm_dir)))
    (tmp_path / "inputs.txt").write_text(f"{SHORT}\n{LONG}\nshort one\n")
    parity = [sys.executable, "-m", "parity"]
    proc = subprocess.run([*parity, "record", "serving.py:build", "--inputs", "inputs.txt", "-o", "golden",
                           "--capture", "outputs"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([*parity, "verify", "golden", "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    stages = {s["stage"]: s for s in json.loads(proc.stdout)["stages"]}
    assert stages["postprocess"]["status"] == "match"
