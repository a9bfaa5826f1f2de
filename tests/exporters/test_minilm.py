"""Acceptance on the real all-MiniLM-L6-v2: every Python-free format passes the parity
check on other batch sizes and sequence lengths, and runs where transformers cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_testing import eager_outputs, run_isolated

from parity.comparison.metrics import compare_tensors
from parity.exporters import export
from parity.exporters.check import CheckTolerance

pytestmark = pytest.mark.slow

SENTENCES = [
    "A short one.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "parity checks that exported models match eager PyTorch.",
    "Hi",
    "Tokenizers pad every sentence of a batch to the longest one.",
    "Exporting freezes shapes unless told otherwise.",
    "Seven",
    "An eighth sentence, a little longer than most of the others here.",
    "Second batch, first line.",
    "Second batch, second and last line of the inputs file.",
]
SUFFIX = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx"}


@pytest.fixture(scope="module")
def inputs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("minilm") / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    return path


@pytest.fixture(scope="module", params=["torchscript", "export", "onnx"])
def exported(request: pytest.FixtureRequest, minilm_dir: Path, inputs_file: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, object]:
    fmt = request.param
    out = tmp_path_factory.mktemp(f"minilm-{fmt}") / f"minilm{SUFFIX[fmt]}"
    return fmt, out, export(str(minilm_dir), fmt, out, inputs=str(inputs_file))


def test_parity_check_passes_on_other_batch_sizes_and_lengths(exported) -> None:
    fmt, _, result = exported
    assert result.ok, result.to_json()
    cases = result.check.cases
    example = cases[0].shapes["input_ids"]
    assert example[0] == 8
    other = [c for c in cases if c.shapes["input_ids"][0] != example[0] and c.shapes["input_ids"][1] != example[1]]
    assert len(other) >= 2 and all(c.ok for c in other)
    assert result.dynamic["input_ids"] == {"0": "batch", "1": "seq"}
    assert set(result.output_names) >= {"last_hidden_state"}
    if fmt == "torchscript":
        assert sum(s.status == "match" for s in result.check.submodules) >= 20
        assert not any(s.status == "diverged" for s in result.check.submodules)


def test_artifact_runs_where_transformers_cannot_be_imported(exported, minilm_dir: Path, inputs_file: Path,
                                                             tmp_path: Path) -> None:
    fmt, out, _ = exported
    report, outputs = run_isolated(out, ["transformers", "tokenizers"], minilm_dir, tmp_path)
    assert report["leaked"] == [] and "last_hidden_state" in report["outputs"]
    eager = eager_outputs(str(minilm_dir), str(inputs_file))
    atol, rtol = CheckTolerance.for_format(fmt, None, None).for_dtype("float32")
    metrics = compare_tensors(eager["last_hidden_state"], outputs["last_hidden_state"], atol, rtol)
    assert metrics.ok, metrics.to_json()
