"""TARGET specs: file and module callables, HF directories, artifacts, and bad ones."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from parity.errors import TargetError
from parity.target import LoadedTarget, Pipeline, load_target

MODELS = Path(__file__).resolve().parents[1] / "models.py"


def _write(tmp_path: Path, body: str, name: str = "serving.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_file_callable_returning_pipeline() -> None:
    loaded = load_target(f"{MODELS}:build_tiny_text")
    assert isinstance(loaded, LoadedTarget)
    assert loaded.kind == "callable" and loaded.spec.endswith(":build_tiny_text")
    assert isinstance(loaded.pipeline, Pipeline) and loaded.pipeline.name == "tiny-text"
    assert loaded.load_seconds >= 0


def test_file_callable_returning_bare_module_is_wrapped() -> None:
    loaded = load_target(f"{MODELS}:build_loop")
    assert isinstance(loaded.pipeline.model, torch.nn.Module)
    assert loaded.pipeline.name == "LoopNet"


def test_file_without_function_defaults_to_build(tmp_path: Path) -> None:
    path = _write(tmp_path, "import torch\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    assert load_target(str(path)).pipeline.name == "Linear"


def test_file_can_import_its_neighbours(tmp_path: Path) -> None:
    _write(tmp_path, "import torch\nMODEL = torch.nn.Linear(2, 3)\n", name="neighbour_mod_x.py")
    path = _write(tmp_path, "from neighbour_mod_x import MODEL\ndef build():\n    return MODEL\n")
    assert load_target(f"{path}:build").pipeline.model.out_features == 3


def test_module_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "servingpkg_x"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "entry.py").write_text("import torch\ndef make():\n    return torch.nn.Linear(2, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_target("servingpkg_x.entry:make")
    assert loaded.kind == "callable" and isinstance(loaded.pipeline.model, torch.nn.Linear)


def test_call_model_dispatches_on_input_shape() -> None:
    seen = []
    pipe = Pipeline(model=lambda *a, **k: seen.append((a, k)))
    pipe.call_model({"x": 1})
    pipe.call_model((1, 2))
    pipe.call_model(3)
    assert seen == [((), {"x": 1}), ((1, 2), {}), ((3,), {})]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("missing_file.py:build", "does not exist"),
        ("no_such_package_zz.mod:build", "importing module 'no_such_package_zz.mod' failed"),
    ],
)
def test_unloadable_specs(spec: str, needle: str) -> None:
    with pytest.raises(TargetError) as err:
        load_target(spec)
    assert needle in str(err.value) and err.value.fix


def test_file_that_does_not_import(tmp_path: Path) -> None:
    path = _write(tmp_path, "import not_a_real_module_qq\n")
    with pytest.raises(TargetError, match=r"importing .*serving.py failed .*ModuleNotFoundError"):
        load_target(f"{path}:build")
    assert not any(getattr(m, "__file__", None) == str(path) for m in list(sys.modules.values()))


def test_file_with_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "def build(:\n")
    with pytest.raises(TargetError, match="SyntaxError"):
        load_target(f"{path}:build")


def test_missing_function(tmp_path: Path) -> None:
    path = _write(tmp_path, "x = 1\n")
    with pytest.raises(TargetError, match="no function 'build'"):
        load_target(f"{path}:build")


def test_not_callable(tmp_path: Path) -> None:
    path = _write(tmp_path, "build = 3\n")
    with pytest.raises(TargetError, match="not callable"):
        load_target(f"{path}:build")


def test_wrong_return_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "def build():\n    return 'a model'\n")
    with pytest.raises(TargetError, match=r"returned str, expected a parity.Pipeline"):
        load_target(f"{path}:build")


def test_build_needing_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path, "def build(weights):\n    return None\n")
    with pytest.raises(TargetError, match="calling build"):
        load_target(f"{path}:build")


def test_build_that_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "def build():\n    raise FileNotFoundError('weights.bin')\n")
    with pytest.raises(TargetError, match=r"raised FileNotFoundError: weights.bin"):
        load_target(f"{path}:build")


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"no config.json"):
        load_target(str(tmp_path))


def test_broken_hf_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(TargetError, match="not loadable as a Hugging Face model"):
        load_target(str(tmp_path))


@pytest.mark.parametrize(("suffix", "kind"), [(".pt", "torchscript"), (".ts", "torchscript"),
                                              (".onnx", "onnx"), (".pt2", "export")])
def test_artifacts_dispatch_by_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str,
                                      kind: str) -> None:
    seen: list[Path] = []

    def load_artifact(path: Path) -> Pipeline:
        seen.append(path)
        return Pipeline(model=torch.nn.Identity(), name=path.name)

    fake = types.ModuleType("parity.target.artifacts")
    fake.load_artifact = load_artifact  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "parity.target.artifacts", fake)
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"x")
    loaded = load_target(str(path))
    assert loaded.kind == kind and seen == [path]


def test_aoti_package_is_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    fake = types.ModuleType("parity.target.artifacts")
    fake.load_artifact = lambda path: Pipeline(model=torch.nn.Identity())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "parity.target.artifacts", fake)
    path = tmp_path / "model.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/data/aotinductor/model/x.so", b"")
    assert load_target(str(path)).kind == "aoti"


def test_missing_artifact_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file"):
        load_target(str(tmp_path / "gone.onnx"))


@pytest.mark.slow
def test_hf_directory(minilm_dir: Path) -> None:
    loaded = load_target(str(minilm_dir))
    assert loaded.kind == "hf" and not loaded.pipeline.model.training
    names = {Path(p).name for p in loaded.pipeline.assets}
    assert {"config.json", "vocab.txt", "tokenizer.json"} <= names and "model.safetensors" not in names
    batch = loaded.pipeline.preprocess(["hello world", "a longer second sentence here"])
    assert isinstance(batch, dict) and batch["input_ids"].shape[0] == 2


def test_real_torchscript_file_records_its_stages(tmp_path: Path) -> None:
    from models import LoopNet
    from parity.records import read_record, record

    torch.manual_seed(0)
    path = tmp_path / "loop.pt"
    torch.jit.save(torch.jit.trace(LoopNet().eval(), torch.randn(2, 8)), str(path))
    loaded = load_target(str(path))
    assert loaded.kind == "torchscript"
    record(loaded, inputs=[torch.randn(8) for _ in range(3)], out=tmp_path / "rec", batch_size=2,
           snapshot_env=False)
    rec = read_record(tmp_path / "rec")
    assert rec.tensor("stages.safetensors", "0/model").shape == (2, 8)
    assert "loop.pt" in rec.assets["files"] and rec.manifest["target_kind"] == "torchscript"
