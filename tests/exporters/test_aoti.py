"""AOTInductor packages: compiled where a C++ compiler exists, a clear refusal otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_testing import MODELS, run_isolated, target

from parity.exporters import export
from parity.target.formats import aoti


def test_without_a_compiler_aoti_says_why_and_what_to_use(run_cli, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(aoti.shutil, "which", lambda name: None)
    code, out, err = run_cli("export", target("tiny_model.py"), "--format", "aoti", "-o", tmp_path / "t.pt2")
    assert code == 2 and out == ""
    assert "--format aoti needs a C++ compiler and none was found" in err and "--format export" in err
    assert list(tmp_path.iterdir()) == []


def test_cxx_variable_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "my-compiler")
    monkeypatch.setattr(aoti.shutil, "which", lambda name: f"/opt/{name}" if name == "my-compiler" else None)
    assert aoti.find_compiler() == "/opt/my-compiler"


@pytest.mark.slow
@pytest.mark.skipif(aoti.find_compiler() is None, reason="no C++ compiler here")
def test_tiny_model_compiles_checks_and_runs_without_its_code(tmp_path: Path) -> None:
    out = tmp_path / "tiny.pt2"
    result = export(target("tiny_model.py"), "aoti", out)
    assert result.ok, result.to_json()
    assert {c.shapes["input"][0] for c in result.check.cases} >= {3, 4, 6}
    report, outputs = run_isolated(out, ["tiny_model"], MODELS, tmp_path)
    assert report["kind"] == "aoti" and outputs["output"].shape == (3, 2)
