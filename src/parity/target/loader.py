"""TARGET spec -> Pipeline: ``file.py:build``, ``package.module:build``, exported
artifacts by suffix, or a local Hugging Face directory."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from parity._io import check_not_lfs_pointer
from parity.errors import LfsPointerError, TargetError
from parity.target.formats import detect, is_artifact
from parity.target.lfs import find_pointers, recording_opens
from parity.target.pipeline import Pipeline

#: prefix of the module names TARGET files are imported under (see target_module_name)
TARGET_MODULE_PREFIX = "_parity_target_"
_FIX_CALLABLE = "point TARGET at a function with no required arguments, e.g. serving.py:build"


@dataclass
class LoadedTarget:
    """A loaded TARGET. ``kind`` is callable, hf or an artifact format's name
    (:mod:`parity.target.formats`: torchscript|export|aoti|onnx);
    ``load_seconds`` is the wall time of building the pipeline (model load included)."""

    pipeline: Pipeline
    spec: str
    kind: str
    load_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "load_seconds": self.load_seconds,
                "name": self.pipeline.name}


def load_target(spec: str) -> LoadedTarget:
    """Load a TARGET spec (see DESIGN.md "Targets"). Raises TargetError naming it."""
    spec = str(spec)
    start = time.perf_counter()
    pipeline, kind = _dispatch(spec)
    return LoadedTarget(pipeline=pipeline, spec=spec, kind=kind, load_seconds=time.perf_counter() - start)


def _dispatch(spec: str) -> tuple[Pipeline, str]:
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TargetError(f"{spec}: directory has no config.json, so it is not a Hugging Face model",
                              fix="pass a model directory saved with save_pretrained, or file.py:build")
        from parity.target.hf import pipeline_from_hf_dir

        return pipeline_from_hf_dir(path), "hf"
    if is_artifact(path):
        pipeline = _pipeline_from_artifact(path)
        return pipeline, _artifact_kind(path)
    module_part, _, func = spec.rpartition(":")
    if not module_part:  # no colon: "serving.py" means serving.py:build
        module_part, func = spec, "build"
    if module_part.endswith(".py"):
        module = _module_from_file(spec, Path(module_part))
    else:
        module = _module_from_name(spec, module_part)
    return _pipeline_from_callable(spec, module, func), "callable"


def _artifact_kind(path: Path) -> str:
    fmt = detect(path)
    assert fmt is not None, path  # is_artifact: some format claims the suffix
    return fmt.name


def _pipeline_from_artifact(path: Path) -> Pipeline:
    if not path.is_file():
        raise TargetError(f"{path}: no such file", fix="pass the path of an exported model file")
    check_not_lfs_pointer(path)
    from parity.target.artifacts import load_artifact

    return as_pipeline(str(path), load_artifact(path))


def _module_from_file(spec: str, file: Path) -> Any:
    if not file.is_file():
        raise TargetError(f"{spec}: {file} does not exist", fix="check the path of the Python file in TARGET")
    check_not_lfs_pointer(file)
    name = target_module_name(file)
    mod_spec = importlib.util.spec_from_file_location(name, file)
    if mod_spec is None or mod_spec.loader is None:
        raise TargetError(f"{spec}: {file} cannot be imported", fix="pass a .py file")
    module = importlib.util.module_from_spec(mod_spec)
    # Build files usually import their neighbours; let them, as `python file.py` would.
    sys.path.insert(0, str(file.resolve().parent))
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise TargetError(f"{spec}: importing {file} failed ({type(exc).__name__}: {exc})",
                          fix="make the file import cleanly with `python " + str(file) + "`") from exc
    finally:
        sys.path.remove(str(file.resolve().parent))
    return module


def target_module_name(file: Path) -> str:
    """The module name a TARGET file is imported under: the same in every process.

    Classes defined in the file carry it in ``__module__``, and a benchmark baseline
    names the model class by it, so it must not depend on ``hash()``, which Python
    salts per process.
    """
    digest = hashlib.sha256(str(file.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{TARGET_MODULE_PREFIX}{digest[:16]}"


def _module_from_name(spec: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise TargetError(f"{spec}: importing module {name!r} failed ({type(exc).__name__}: {exc})",
                          fix="install the package or use path/to/file.py:build") from exc


def _pipeline_from_callable(spec: str, module: Any, func: str) -> Pipeline:
    build = getattr(module, func, None)
    if build is None:
        raise TargetError(f"{spec}: no function {func!r} in {getattr(module, '__file__', module)}",
                          fix=_FIX_CALLABLE)
    if not callable(build):
        raise TargetError(f"{spec}: {func!r} is not callable", fix=_FIX_CALLABLE)
    failure: Exception | None = None
    with recording_opens() as opened:  # which files build() read, should it fail
        try:
            built = build()
        except Exception as exc:
            failure = exc
    if failure is not None:
        _raise_build_failure(spec, module, func, failure, opened)
    return as_pipeline(spec, built)


def _raise_build_failure(spec: str, module: Any, func: str, exc: Exception, opened: list[str]) -> NoReturn:
    """A git-LFS pointer the build could have read is the likely cause: name it (exit 2).
    Otherwise say what build() raised."""
    roots = [Path.cwd()]
    if getattr(module, "__name__", "").startswith(TARGET_MODULE_PREFIX) and getattr(module, "__file__", None):
        roots.insert(0, Path(module.__file__).parent)
    pointers = find_pointers(opened, roots)
    if pointers:
        error = LfsPointerError(pointers[0])
        if len(pointers) > 1:
            error.message += f" (and {len(pointers) - 1} other pointer file(s) near it)"
            error.args = (error.message,)
        raise error from exc
    if isinstance(exc, TypeError):
        raise TargetError(f"{spec}: calling {func}() failed ({exc})", fix=_FIX_CALLABLE) from exc
    raise TargetError(f"{spec}: {func}() raised {type(exc).__name__}: {exc}",
                      fix="make the build function run on its own") from exc


def as_pipeline(spec: str, built: Any) -> Pipeline:
    """A Pipeline from what a build function returned (Pipeline or bare nn.Module)."""
    if isinstance(built, Pipeline):
        return built
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(built, torch.nn.Module):
        return Pipeline(model=built, name=type(built).__name__)
    raise TargetError(f"{spec}: returned {type(built).__name__}, expected a parity.Pipeline or a torch.nn.Module",
                      fix="return parity.Pipeline(model=...) or the nn.Module itself")
