"""parity.target.formats: one registry of artifact formats that loading, export, the
check and the recorded-target rule all read.

The dummy format below is a whole new format written as a format module would be: a
magic header in front of a TorchScript archive, sharing ``.pt`` with TorchScript and
told apart by its recogniser. Registering it is the one line a new format adds.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from parity.errors import TargetError
from parity.target import formats
from parity.target.formats import ArtifactFormat
from parity.target.formats.job import ExportJob, Finding
from parity.target.formats.model_io import META_KEY

# --- the dummy format module -------------------------------------------------------------

MAGIC = b"PARITY-DUMMY/1\n"


def _recognise(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _load(path: str) -> tuple[Any, str]:
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise TargetError(f"{path}: not a dummy artifact", fix="export it again")
    extra = {META_KEY: ""}
    module = torch.jit.load(io.BytesIO(data[len(MAGIC):]), map_location="cpu", _extra_files=extra)
    return module.eval(), extra[META_KEY]


def _export(job: ExportJob) -> tuple[bytes, list[Finding]]:
    with torch.no_grad():
        traced = torch.jit.trace(job.wrapper, tuple(job.tensors), check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={META_KEY: job.meta.to_text()})
    return MAGIC + buf.getvalue(), [Finding("info", "dummy", "written by the dummy format")]


DUMMY = ArtifactFormat(name="dummy", suffixes=(".pt",), title="Dummy", note="a test format", load=_load,
                       export=_export, recognise=_recognise, tolerance_scale=3.0)

# --- the tests ---------------------------------------------------------------------------

BUILD = '''
import torch
from parity.target import Pipeline

def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    rows = [torch.randn(4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    return Pipeline(model=model, example_inputs=rows, batch_size=3, name="tiny")
'''


@pytest.fixture
def dummy() -> Iterator[ArtifactFormat]:
    formats.register(DUMMY)  # the one registry line
    try:
        yield DUMMY
    finally:
        formats.unregister(DUMMY.name)


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    (tmp_path / "tiny.py").write_text(BUILD)
    return f"{tmp_path / 'tiny.py'}:build"


def test_a_registered_format_is_exported_checked_and_loaded(dummy: ArtifactFormat, tiny: str,
                                                            tmp_path: Path) -> None:
    from parity.exporters import FORMATS, export
    from parity.target import load_target

    out = tmp_path / "model.pt"
    result = export(tiny, "dummy", out)
    assert result.ok and out.read_bytes().startswith(MAGIC)
    doc = result.to_json()
    assert doc["format"] == "dummy" and doc["method"] is None  # --method is TorchScript's alone
    assert doc["check"]["tolerance"]["scale"] == 3.0 and len(doc["check"]["cases"]) >= 3
    assert [f["code"] for f in doc["findings"]] == ["dummy"]
    loaded = load_target(str(out))
    assert loaded.kind == "dummy"
    assert loaded.pipeline.model(torch.ones(2, 4)).shape == (2, 2)
    assert FORMATS["dummy"] == (".pt",)
    plain = tmp_path / "plain.pt"  # a TorchScript file with the same suffix is still TorchScript
    export(tiny, "torchscript", plain, check=False)
    assert load_target(str(plain)).kind == "torchscript"


def test_the_cli_offers_a_registered_format_and_forgets_an_unregistered_one(run_cli, tiny: str,
                                                                            tmp_path: Path) -> None:
    formats.register(DUMMY)
    try:
        code, out, err = run_cli("export", tiny, "--format", "dummy", "-o", tmp_path / "m.pt", "--json")
        assert code == 0, err
        assert json.loads(out)["format"] == "dummy"
        code, out, _ = run_cli("export", "--help")
        assert "dummy" in out
    finally:
        formats.unregister(DUMMY.name)
    code, out, err = run_cli("export", tiny, "--format", "dummy", "-o", tmp_path / "n.pt")
    assert code == 2 and out == "" and "dummy" in err


def test_a_recorded_artifact_of_a_new_suffix_is_refused_like_any_artifact(tmp_path: Path) -> None:
    from parity.target.policy import recorded_target

    (tmp_path / "model.dmy").write_bytes(b"x")
    with pytest.raises(TargetError, match=r"not a \.py file"):  # refused, but not yet as an artifact
        recorded_target("model.dmy", "manifest.json", None, cwd=tmp_path)
    formats.register(ArtifactFormat(name="dmy", suffixes=(".dmy",), title="Dmy", load=_load, export=_export))
    try:
        with pytest.raises(TargetError, match="an exported artifact"):
            recorded_target("model.dmy", "manifest.json", None, cwd=tmp_path)
    finally:
        formats.unregister("dmy")


def test_an_export_archive_named_after_aotinductor_is_not_aoti(tmp_path: Path) -> None:
    """One recogniser: a torch.export archive's top folder is its file name, so a
    substring test on "aotinductor" took ``aotinductor_model.pt2`` for a compiled package."""
    path = tmp_path / "aotinductor_model.pt2"
    program = torch.export.export(torch.nn.Linear(3, 2).eval(), (torch.ones(2, 3),))
    torch.export.save(program, str(path))
    assert all(n.startswith("aotinductor_model/") for n in zipfile.ZipFile(path).namelist())
    fmt = formats.detect(path)
    assert fmt is not None and fmt.name == "export"
    aoti = tmp_path / "compiled.pt2"
    with zipfile.ZipFile(aoti, "w") as zf:
        zf.writestr("compiled/data/aotinductor/model/x.so", b"")
    fmt = formats.detect(aoti)
    assert fmt is not None and fmt.name == "aoti"


def test_detect_knows_only_registered_suffixes_and_falls_back_for_a_broken_file(tmp_path: Path) -> None:
    assert formats.detect(tmp_path / "model.bin") is None
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"not a zip")
    fmt = formats.detect(broken)
    assert fmt is not None and fmt.name == "export"  # its loader says what is wrong
    assert formats.describe_suffixes() == ".pt/.ts (TorchScript), .pt2 (torch.export or AOTInductor) or .onnx (ONNX)"


def test_registry_refuses_a_second_format_of_one_name_and_bad_suffixes() -> None:
    with pytest.raises(ValueError, match="already registered"):
        formats.register(ArtifactFormat(name="onnx", suffixes=(".onnx2",), title="x", load=_load, export=_export))
    with pytest.raises(ValueError, match="suffixes"):
        ArtifactFormat(name="odd", suffixes=("PT",), title="x", load=_load, export=_export)
    assert formats.names() == ("torchscript", "export", "aoti", "onnx")
