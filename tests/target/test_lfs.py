"""Files that came down as git-LFS pointers are named as such wherever parity reads them
(issue 13): exit 2 with `git lfs pull`, not a misleading parse error or a silent hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from parity.errors import LfsPointerError
from parity.records import record
from parity.target import Pipeline, load_inputs, load_target

POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db\n"
           "size 90868376\n")


def _pointer(path: Path) -> Path:
    path.write_text(POINTER)
    return path


def _assert_names(err: pytest.ExceptionInfo[LfsPointerError], path: Path) -> None:
    assert str(path) in str(err.value)
    assert "git-LFS pointer" in str(err.value) and "git lfs pull" in str(err.value)


def test_hf_folder_whose_weights_are_a_pointer(tmp_path: Path, minilm_dir: Path, run_cli) -> None:
    folder = tmp_path / "minilm"
    folder.mkdir()
    for item in minilm_dir.iterdir():
        if item.name != "model.safetensors":
            (folder / item.name).symlink_to(item)
    weights = _pointer(folder / "model.safetensors")
    with pytest.raises(LfsPointerError) as err:
        load_target(str(folder))
    _assert_names(err, weights)
    code, _, stderr = run_cli("record", str(folder), "-o", str(tmp_path / "rec"), "--inputs",
                                str(_text(tmp_path)))
    assert code == 2 and "model.safetensors is a git-LFS pointer" in stderr and "git lfs pull" in stderr
    assert "header too large" not in stderr and not (tmp_path / "rec").exists()


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "inputs.txt"
    path.write_text("hello\n")
    return path


def test_asset_folder_holding_a_pointer(tmp_path: Path) -> None:
    assets = tmp_path / "tokenizer"
    assets.mkdir()
    (assets / "vocab.txt").write_text("a\nb\n")
    pointer = _pointer(assets / "merges.txt")
    pipe = Pipeline(model=torch.nn.Linear(2, 2), assets=[assets], example_inputs=[torch.ones(2)])
    with pytest.raises(LfsPointerError) as err:
        record(pipe, out=tmp_path / "rec", snapshot_env=False)
    _assert_names(err, pointer)
    assert not (tmp_path / "rec").exists()


def test_single_asset_file_pointer(tmp_path: Path) -> None:
    pointer = _pointer(tmp_path / "labels.json")
    pipe = Pipeline(model=torch.nn.Linear(2, 2), assets=[pointer], example_inputs=[torch.ones(2)])
    with pytest.raises(LfsPointerError):
        record(pipe, out=tmp_path / "rec", snapshot_env=False)


@pytest.mark.parametrize("name", ["model.pt2", "model.pt", "model.onnx"])
def test_artifact_pointer(tmp_path: Path, name: str, run_cli) -> None:
    artifact = _pointer(tmp_path / name)
    with pytest.raises(LfsPointerError) as err:
        load_target(str(artifact))
    _assert_names(err, artifact)
    code, _, stderr = run_cli("bench", str(artifact))
    assert code == 2 and "is a git-LFS pointer" in stderr


def test_artifact_pointer_through_load_artifact(tmp_path: Path) -> None:
    from parity.target.artifacts import load_artifact

    with pytest.raises(LfsPointerError):
        load_artifact(_pointer(tmp_path / "model.pt2"))


@pytest.mark.parametrize("name", ["inputs.txt", "inputs.jsonl", "inputs.safetensors", "inputs.npz"])
def test_inputs_file_pointer(tmp_path: Path, name: str) -> None:
    # A .txt pointer used to be read as three lines of "text inputs", silently.
    inputs = _pointer(tmp_path / name)
    with pytest.raises(LfsPointerError) as err:
        load_inputs(inputs, Pipeline(model=torch.nn.Linear(2, 2)))
    _assert_names(err, inputs)


def test_target_file_pointer(tmp_path: Path) -> None:
    target = _pointer(tmp_path / "serving.py")
    with pytest.raises(LfsPointerError) as err:
        load_target(f"{target}:build")
    _assert_names(err, target)


def test_a_small_real_file_is_not_a_pointer(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("version one\nhello\n")
    assert load_inputs(inputs, Pipeline(model=torch.nn.Linear(2, 2))) == ["version one", "hello"]
