"""torch.compile'd models (issue 16): a compiled module records its inner layers (each
parity hook is a graph break that runs eagerly) and verifies against its eager version
(``_orig_mod.`` is stripped from layer keys). Compiling takes seconds to tens of seconds
on 2 cores, so these tests are slow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from parity.comparison import compare, verify
from parity.records import read_record, record, strip_wrapper_prefix
from parity.records.capture import compiled

pytestmark = pytest.mark.slow

INPUTS = [torch.randn(8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
TARGET = '''
import torch
from torch import nn


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def eager():
    return model()


def compiled():
    return torch.compile(model())


def compiled_planted():
    m = model()
    with torch.no_grad():
        m[2].weight[1, 3] += 0.5
    return torch.compile(m)
'''


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _keys(rec: Path) -> set[str]:
    return {strip_wrapper_prefix(e["key"]) for e in read_record(rec).layers}


def test_compiled_model_records_its_inner_layers_even_when_already_compiled(tmp_path: Path) -> None:
    c = torch.compile(_model())
    assert compiled(c) and not compiled(_model())
    with torch.no_grad():
        c(torch.stack(INPUTS))  # compiled code for exactly the record's batch, before any hook exists
    record(c, inputs=INPUTS, out=tmp_path / "compiled", snapshot_env=False, batch_size=4)
    record(_model(), inputs=INPUTS, out=tmp_path / "eager", snapshot_env=False, batch_size=4)
    assert {"0#0/out", "1#0/out", "2#0/out", "#0/out"} <= _keys(tmp_path / "compiled")
    assert _keys(tmp_path / "compiled") == _keys(tmp_path / "eager")
    for a, b in (("eager", "compiled"), ("compiled", "eager")):
        result = compare(tmp_path / a, tmp_path / b)
        assert result.verdict == "PASS", result.reason
    with torch.no_grad():  # the hooks are gone: the compiled model runs on without them
        assert c(torch.stack(INPUTS)).shape == (4, 4)


@pytest.fixture
def target(tmp_path: Path) -> str:
    path = tmp_path / "compiled_target.py"
    path.write_text(TARGET)
    return str(path)


@pytest.mark.parametrize("capture", ["stats", "full"])
def test_compiled_target_verifies_against_its_eager_record(tmp_path: Path, target: str, capture: str) -> None:
    record(f"{target}:eager", inputs=INPUTS, out=tmp_path / "a", capture=capture, snapshot_env=False, batch_size=2)
    assert verify(tmp_path / "a", f"{target}:compiled").verdict == "PASS"
    bad = verify(tmp_path / "a", f"{target}:compiled_planted")
    assert bad.verdict == "FAIL" and bad.first_divergent_layer == "2#0/out"
    if capture == "full":  # replay runs B's compiled module's submodule on A's inputs
        assert bad.first_introducing_layer == "2#0/out"


def test_model_compiled_in_place_is_recognised() -> None:
    m: Any = _model()
    m.compile()
    assert compiled(m)
