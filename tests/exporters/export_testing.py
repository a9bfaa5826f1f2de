"""Helpers for export tests: the small model TARGETs and an isolated artifact runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"

# Runs an artifact in a fresh interpreter that cannot import the model's code: a
# meta-path finder refuses the blocked top-level modules (and parity's loader modules
# for .py targets), and the model's folder is removed from sys.path.
_ISOLATED_CHILD = r"""
import importlib.abc, json, os, sys
blocked = set(json.loads(sys.argv[2]))
hidden = os.path.realpath(sys.argv[3])
sys.path[:0] = [p for p in sys.argv[5:]]  # extra folders (the blocker's own test)

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked or name.startswith("_parity_target_"):
            raise ImportError(f"{name} is blocked: the artifact must run without the model's code")
        return None

sys.meta_path.insert(0, Blocker())
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != hidden]
from safetensors.torch import save_file
from parity.target import load_target

loaded = load_target(sys.argv[1])
p = loaded.pipeline
out = p.call_model(p.preprocess(list(p.example_inputs)))
flat = out if isinstance(out, dict) else {"output": out}
save_file({k: v.contiguous() for k, v in flat.items()}, sys.argv[4])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked or m.startswith("_parity_target_"))
print(json.dumps({"kind": loaded.kind, "outputs": sorted(flat), "leaked": leaked}))
"""


def target(name: str) -> str:
    """TARGET spec of a model file in tests/exporters/models."""
    return f"{MODELS / name}:build"


def run_isolated(artifact: Path | str, blocked: list[str], hidden: Path, tmp_path: Path,
                 extra_path: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """(child report, {output name: tensor}) of the artifact run in a fresh isolated interpreter.

    ``extra_path`` folders are put on the child's sys.path first (before ``hidden`` is
    removed), so a test can prove the meta-path blocker alone stops an import.
    """
    from safetensors.torch import load_file

    out_file = tmp_path / "isolated_outputs.safetensors"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _ISOLATED_CHILD, str(artifact), json.dumps(blocked), str(hidden), str(out_file), *extra_path],
        capture_output=True, text=True, cwd=tmp_path, check=False, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), load_file(str(out_file))


def eager_outputs(spec: str, inputs: str | None = None) -> dict:
    """{output name: tensor} of the eager model on the export example (first batch)."""
    import torch

    from parity.target import iter_batches, load_inputs, load_target, model_input
    from parity.target.formats.model_io import flatten_outputs

    pipeline = load_target(spec).pipeline
    items = load_inputs(inputs, pipeline)
    batch = next(iter(iter_batches(items, pipeline.batch_size)))
    with torch.no_grad():
        out = pipeline.call_model(model_input(pipeline, batch))
    return dict(flatten_outputs(out))


def branch_line() -> int:
    """Line of the data-dependent ``if`` in branchy_model.py (what findings must point at)."""
    lines = (MODELS / "branchy_model.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if "if y.sum() > 0" in line)
