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


# --- a pointer read by the target's own build() (issue 13 #4) ---------------------------------

_SAFETENSORS_BUILD = '''
import torch
from safetensors.torch import load_file

def build():
    state = load_file({weights!r})
    model = torch.nn.Linear(2, 2)
    model.load_state_dict(state)
    return model
'''


def _serving(folder: Path, weights: str) -> Path:
    target = folder / "serving.py"
    target.write_text(_SAFETENSORS_BUILD.format(weights=weights))
    return target


def test_build_loading_a_pointer_with_a_rust_loader_names_it(tmp_path: Path, monkeypatch, run_cli) -> None:
    # safetensors opens the file in Rust: Python's audit hook never sees it; the scan does.
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "assets" / "model").mkdir(parents=True)
    elsewhere.mkdir()
    weights = _pointer(project / "assets" / "model" / "model.safetensors")
    target = _serving(project, "assets/model/model.safetensors")
    monkeypatch.chdir(project)
    with pytest.raises(LfsPointerError) as err:
        load_target(f"{target}:build")
    _assert_names(err, weights)
    assert "header too large" in str(err.value.__cause__)  # chained from what build() raised
    monkeypatch.chdir(elsewhere)  # the target file's folder is scanned too
    code, _, stderr = run_cli("record", str(target), "-o", str(tmp_path / "rec"), "--inputs", str(_text(tmp_path)))
    assert code == 2 and f"{weights} is a git-LFS pointer" in stderr and "git lfs pull" in stderr
    assert "header too large" not in stderr and "make the build function run" not in stderr


def test_build_opening_a_pointer_outside_the_scanned_folders_names_it(tmp_path: Path, monkeypatch) -> None:
    # torch.load reads through Python's open: the audit-hook recorder names it wherever it is.
    far = tmp_path / "a" / "b" / "c" / "d" / "e" / "f"
    far.mkdir(parents=True)
    weights = _pointer(far / "model.pt")
    (tmp_path / "project").mkdir()
    target = tmp_path / "project" / "serving.py"
    target.write_text(f"import torch\n\ndef build():\n    return torch.load({str(weights)!r})\n")
    monkeypatch.chdir(tmp_path / "project")
    with pytest.raises(LfsPointerError) as err:
        load_target(f"{target}:build")
    _assert_names(err, weights)


def test_several_pointers_first_named_and_the_rest_counted(tmp_path: Path, monkeypatch) -> None:
    weights = _pointer(tmp_path / "model.safetensors")
    _pointer(tmp_path / "other.bin")
    _pointer(tmp_path / "third.bin")
    target = _serving(tmp_path, str(weights))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LfsPointerError) as err:
        load_target(f"{target}:build")
    assert str(err.value).startswith(f"{weights} is a git-LFS pointer")
    assert "and 2 other pointer file(s)" in str(err.value)


def test_build_failing_for_another_reason_keeps_its_message(tmp_path: Path, monkeypatch, run_cli) -> None:
    (tmp_path / "notes.txt").write_text("version one\n")  # small files that are no pointers
    target = tmp_path / "serving.py"
    target.write_text("def build():\n    raise ValueError('no GPU configured')\n")
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli("bench", f"{target}:build")
    assert code == 2 and "build() raised ValueError: no GPU configured" in stderr
    assert "make the build function run on its own" in stderr and "git-LFS" not in stderr


def test_the_scan_is_bounded_in_depth(tmp_path: Path, monkeypatch) -> None:
    from parity.target.lfs import MAX_DEPTH

    deep = tmp_path.joinpath(*[f"d{i}" for i in range(MAX_DEPTH + 1)])
    deep.mkdir(parents=True)
    weights = _pointer(deep / "model.safetensors")  # read by Rust, below the bound: not found
    target = _serving(tmp_path, str(weights))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception) as err:
        load_target(f"{target}:build")
    assert not isinstance(err.value, LfsPointerError)
    assert "SafetensorError" in str(err.value) and "make the build function run on its own" in str(err.value)
    (deep.parent / "shallow.safetensors").write_text(POINTER)  # at the bound: found
    with pytest.raises(LfsPointerError) as found:
        load_target(f"{target}:build")
    _assert_names(found, deep.parent / "shallow.safetensors")


def test_the_scan_skips_hidden_folders_and_venvs(tmp_path: Path) -> None:
    from parity.target.lfs import find_pointers

    for folder in (".cache", "venv", "lib/site-packages", "pkg/__pycache__"):
        (tmp_path / folder).mkdir(parents=True)
        _pointer(tmp_path / folder / "model.bin")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert find_pointers([], [tmp_path]) == []
    _pointer(tmp_path / "pkg" / "weights.bin")
    assert find_pointers([], [tmp_path]) == [tmp_path / "pkg" / "weights.bin"]


def test_the_scan_stops_after_its_entry_budget(tmp_path: Path, monkeypatch) -> None:
    from parity.target import lfs

    monkeypatch.setattr(lfs, "MAX_ENTRIES", 10)
    for i in range(20):
        (tmp_path / f"a{i:02d}.txt").write_text("x")
    _pointer(tmp_path / "z.bin")  # the 21st entry by name
    assert lfs.find_pointers([], [tmp_path]) == []
