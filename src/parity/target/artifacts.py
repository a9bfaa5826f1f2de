"""Exported artifacts as TARGETs, in any format of :mod:`parity.target.formats`.

An artifact runs without the model's Python code. The parity metadata stored inside it
at export (``parity.artifact/1``, see :mod:`parity.target.formats.model_io`) names the inputs in
order and the outputs, and carries example inputs, so the Pipeline built here can be
recorded, verified and benchmarked with no ``--inputs``. Artifacts made by other tools
load too: inputs are then passed positionally and outputs are named by position.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from parity._io import check_not_lfs_pointer
from parity.errors import ParityError, TargetError
from parity.target.formats import describe_suffixes, detect, is_artifact
from parity.target.formats.base import ArtifactFormat
from parity.target.formats.model_io import (
    CALL_ARGS,
    CALL_KWARGS,
    CALL_SINGLE,
    ArtifactMeta,
    flatten_outputs,
)
from parity.target.inputs import TensorInputs, collate
from parity.target.pipeline import Pipeline


class ArtifactModel:
    """Calls an artifact the way the eager model was called.

    Keyword inputs are put in the stored order, positional ones passed as they come.
    Returns a tensor for a single-output model, else ``{output name: tensor}``.
    """

    def __init__(self, run: Callable[..., Any], meta: ArtifactMeta | None, fmt: ArtifactFormat, path: str) -> None:
        self.runner = run
        self.meta = meta
        self.artifact_format = fmt
        self.format = fmt.name
        self.path = path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tensors = self._ordered(args, kwargs)
        if self.meta is not None and self.meta.method == "script" and self.meta.call == CALL_KWARGS:
            # a scripted model keeps the user's forward signature: pass by name
            raw = self.runner(**dict(zip(self.meta.input_names, tensors)))
        else:
            raw = self.runner(*tensors)
        outputs = [t for _, t in flatten_outputs(raw)]
        if self.meta is None:
            return outputs[0] if len(outputs) == 1 else {str(i): t for i, t in enumerate(outputs)}
        if self.meta.single_output and len(outputs) == 1:
            return outputs[0]
        return dict(zip(self.meta.output_names, outputs))

    def _ordered(self, args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any]:
        if not kwargs:
            return list(args)
        names = self.meta.input_names if self.meta is not None else []
        unknown = sorted(set(kwargs) - set(names))
        if unknown or args:
            raise TargetError(f"{self.path}: unexpected inputs {unknown or list(kwargs)} "
                              f"(the artifact takes {names or 'positional tensors'})",
                              fix="feed the inputs the model was exported with")
        missing = [n for n in names if n not in kwargs]
        if missing:
            raise TargetError(f"{self.path}: missing inputs {missing}", fix=f"pass all of {names}")
        return [kwargs[n] for n in names]

    def __repr__(self) -> str:
        return f"ArtifactModel({self.format}, {self.path})"

    def named_weights(self, kind: str, remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
        """The artifact's parameters or buffers (``kind``) under the eager model's names.

        Formats with ``named_weights`` (TorchScript, torch.export) keep every weight with
        its module path; parity's export wrapper adds ``model.``, removed here so records
        of eager and artifact match. Others (ONNX, AOTInductor) yield nothing.
        """
        method = getattr(self.runner, f"named_{kind}", None)
        if method is None or not self.artifact_format.named_weights:
            return
        wrapped = self.meta is not None and self.meta.method != "script"
        for name, tensor in method(remove_duplicate=remove_duplicate):
            yield (name.removeprefix("model.") if wrapped else name), tensor


def as_module(artifact: ArtifactModel) -> Any:
    """``artifact`` as a ``torch.nn.Module`` whose weights carry the eager names.

    Records hash a model's parameters only when it is a Module, and the bench counts
    them: with this, an artifact's record matches its eager model's weight by weight.
    The artifact is kept out of the module tree, so hooks see one root module.
    """
    import torch

    class ArtifactModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.__dict__["artifact"] = artifact  # not a submodule: TorchScript refuses hooks

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return artifact(*args, **kwargs)

        def named_parameters(self, prefix: str = "", recurse: bool = True,
                             remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
            for name, t in artifact.named_weights("parameters", remove_duplicate):
                yield prefix + name, t

        def named_buffers(self, prefix: str = "", recurse: bool = True,
                          remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
            for name, t in artifact.named_weights("buffers", remove_duplicate):
                yield prefix + name, t

        def extra_repr(self) -> str:
            return f"{artifact.format}, {artifact.path}"

    return ArtifactModule().eval()


def load_artifact(path: str | os.PathLike[str]) -> Pipeline:
    """A Pipeline around the artifact at ``path``; format chosen by suffix (and contents,
    :func:`parity.target.formats.detect`).

    ``.pt``/``.ts``: TorchScript. ``.pt2``: torch.export archive or AOTInductor package.
    ``.onnx``: onnxruntime (the ``parity[onnx]`` extra). Raises :class:`TargetError`
    naming the file when it is missing, of another format, or corrupt.
    """
    p = Path(path)
    if not is_artifact(p):
        raise TargetError(f"{p}: not an exported model ({p.suffix.lower() or 'no suffix'})",
                          fix=f"pass a {describe_suffixes()} file")
    if not p.is_file():
        raise TargetError(f"{p}: no such file", fix="pass the path of an exported model file")
    check_not_lfs_pointer(p)
    fmt = detect(p)
    assert fmt is not None, p  # is_artifact: some format claims the suffix
    run, meta_text = _open(p, fmt)
    meta = ArtifactMeta.from_text(meta_text, str(p)) if meta_text else None
    model = as_module(ArtifactModel(run, meta, fmt, str(p)))
    examples = _example_rows(meta)
    return Pipeline(model=model, preprocess=collate, postprocess=None, assets=[str(p)],
                    example_inputs=examples, batch_size=max(1, len(examples or [])) if examples else 8,
                    name=p.name)


def _open(p: Path, fmt: ArtifactFormat) -> tuple[Callable[..., Any], str]:
    """(runner taking positional tensors, metadata text) from the format's loader."""
    try:
        return fmt.load(str(p))
    except ParityError:
        raise
    except Exception as exc:
        raise TargetError(f"{p}: cannot be loaded as {fmt.name} ({type(exc).__name__}: {_line(exc)})",
                          fix=f"re-export it with `parity export --format {fmt.name}` in an environment "
                              "with the same torch version") from exc


def _line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return text[:200]


def _example_rows(meta: ArtifactMeta | None) -> TensorInputs | None:
    """The embedded example inputs as rows shaped like the eager call (dict, tuple or tensor)."""
    if meta is None:
        return None
    example = meta.example_inputs()
    if not example:
        return None
    names = [n for n in meta.input_names if n in example]
    rows = int(example[names[0]].shape[0])
    if meta.call == CALL_SINGLE:
        return TensorInputs(example[names[0]][i] for i in range(rows))
    if meta.call == CALL_ARGS:
        return TensorInputs(tuple(example[n][i] for n in names) for i in range(rows))
    assert meta.call == CALL_KWARGS, meta.call
    return TensorInputs({n: example[n][i] for n in names} for i in range(rows))
