"""Journey: export in A, record the artifact in A, verify the artifact in B.

The README's serving.py (the real MiniLM) goes through TorchScript and torch.export;
ONNX and AOTInductor (which compiles C++ for every kernel) take the journeys' small
text model, to keep CI time reasonable (MiniLM's ONNX export and AOTInductor compile
alone take 20 s and 70 s on 2 cores; tests/exporters covers MiniLM). An artifact is code
(a `.pt`/`.pt2` unpickles), so verify is given it on the command line; a record never
chooses it.
"""

from __future__ import annotations

import json

import pytest
from journey_tools import Journey, Venv

pytestmark = pytest.mark.slow

FORMATS = [
    ("torchscript", "serving.py:build", "model.pt"),
    ("export", "serving.py:build", "model.pt2"),
    ("onnx", "textmodel.py:build", "text.onnx"),
    ("aoti", "textmodel.py:build", "text-aoti.pt2"),
]


@pytest.mark.parametrize(("fmt", "target", "artifact"), FORMATS, ids=[f[0] for f in FORMATS])
def test_export_record_verify(research: Journey, venv_a: Venv, venv_b: Venv, fmt: str, target: str,
                              artifact: str) -> None:
    export = research.parity(venv_a, "export", target, "--format", fmt, "-o", artifact, "--json")
    assert export.json()["ok"] is True, export.describe()
    rec = f"rec-{fmt}"
    research.parity(venv_a, "record", artifact, "-o", rec)
    assert json.loads((research.work / rec / "manifest.json").read_text())["target"].endswith(artifact)
    verify = research.parity(venv_b, "verify", rec, artifact, "--json")
    doc = verify.json()
    assert doc["verdict"] in ("PASS", "PASS-with-warnings"), doc["reason"]
    assert not doc["first_divergent_stage"], doc["reason"]


def test_verify_never_loads_an_artifact_the_record_names(research: Journey, venv_a: Venv, venv_b: Venv) -> None:
    """Without TARGET, a record whose target is an artifact is refused (exit 2, naming
    TARGET): loading it would run code chosen by the record."""
    if not (research.work / "rec-export").is_dir():
        research.parity(venv_a, "export", "serving.py:build", "--format", "export", "-o", "model.pt2")
        research.parity(venv_a, "record", "model.pt2", "-o", "rec-export")
    step = research.parity(venv_b, "verify", "rec-export", ok=(2,))
    assert "TARGET" in step.stderr and len(step.stderr.strip().splitlines()) == 1, step.describe()
