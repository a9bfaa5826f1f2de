"""parity.target.policy: which recorded targets parity may run without being told."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.errors import TargetError
from parity.target.policy import recorded_target


@pytest.fixture
def here(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "rec").mkdir(parents=True)
    (work / "pkg").mkdir()
    for rel in ("serving.py", "pkg/model.py", "rec/payload.py"):
        (work / rel).write_text("def build():\n    pass\n")
    (tmp_path / "outside.py").write_text("def build():\n    pass\n")
    return work


@pytest.mark.parametrize("spec", ["serving.py:build", "serving.py", "pkg/model.py:make", "./serving.py:build"])
def test_relative_py_files_here_may_run(here: Path, spec: str) -> None:
    chosen = recorded_target(spec, "rec/manifest.json", here / "rec", cwd=here)
    assert chosen.spec == spec and chosen.file.parent in (here.resolve(), (here / "pkg").resolve())
    assert "\n" not in chosen.describe() and spec in chosen.describe()


@pytest.mark.parametrize(("spec", "why"), [
    ("rec/payload.py:build", "inside the record"),
    ("this:build", "module"),
    ("pkg.model:build", "module"),
    ("pkg", "module"),
    ("/etc/x.py:build", "absolute"),
    ("~/x.py:build", "absolute"),
    ("../outside.py:build", "'..'"),
    ("pkg/../../outside.py:build", "'..'"),
    ("model.pt2", "artifact"),
    ("model.PT", "artifact"),
    ("model.onnx", "artifact"),
    ("serving.py:os.system('x')", "not a function name"),
    ("missing.py:build", "does not exist"),
])
def test_anything_else_needs_target(here: Path, spec: str, why: str) -> None:
    with pytest.raises(TargetError) as err:
        recorded_target(spec, "rec/manifest.json", here / "rec", usage="parity verify DIR TARGET", cwd=here)
    text = str(err.value)
    assert why in text and "rec/manifest.json" in text and "parity verify DIR TARGET" in text
    assert repr(spec) in text


def test_symlinks_are_followed_before_judging(here: Path) -> None:
    (here / "into_record.py").symlink_to(here / "rec" / "payload.py")
    (here / "escape.py").symlink_to(here.parent / "outside.py")
    with pytest.raises(TargetError, match="inside the record"):
        recorded_target("into_record.py:build", "m", here / "rec", cwd=here)
    with pytest.raises(TargetError, match="outside this folder"):
        recorded_target("escape.py:build", "m", here / "rec", cwd=here)


@pytest.mark.parametrize("spec", [None, "", 42, ["serving.py"]])
def test_no_target_recorded(here: Path, spec: object) -> None:
    with pytest.raises(TargetError, match="no target recorded"):
        recorded_target(spec, "rec/manifest.json", here / "rec", cwd=here)


def test_control_characters_in_a_refused_target_are_not_printed_raw(here: Path) -> None:
    with pytest.raises(TargetError) as err:
        recorded_target("\x1b[2Jevil:build", "m", here / "rec", cwd=here)
    assert "\x1b" not in str(err.value)
