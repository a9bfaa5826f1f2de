"""An artifact as a TARGET whose model runs in the C++ runner (``--runner cpp``).

The Pipeline looks like :func:`parity.target.artifacts.load_artifact`'s (same inputs,
same output names, the embedded example inputs), but every model call is a request to
one runner process with no Python interpreter: ``record``, ``verify`` and the export
check then prove what the C++ side computes. The artifact is never loaded in Python.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parity.progress import ProgressFn
from parity.runner.process import RunnerProcess
from parity.target.artifacts import ArtifactModel, _example_rows, as_module
from parity.target.formats import get as get_format
from parity.target.formats.model_io import ArtifactMeta
from parity.target.inputs import collate
from parity.target.loader import LoadedTarget
from parity.target.pipeline import Pipeline

#: LoadedTarget.kind suffix and Pipeline name suffix of a target run in the C++ runner
CPP = "cpp"


class RunnerCall:
    """Positional (or, for a scripted keyword model, named) tensors in, the flat outputs
    out as a tuple in the runner's order: what :class:`ArtifactModel` expects of a runner."""

    def __init__(self, process: RunnerProcess, meta: ArtifactMeta | None) -> None:
        self.process = process
        self.meta = meta

    def names_for(self, count: int) -> list[str]:
        if self.meta is not None and len(self.meta.input_names) == count:
            return list(self.meta.input_names)
        return [f"input_{i}" for i in range(count)]

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        if kwargs:
            names = self.names_for(len(kwargs))
            tensors: Sequence[Any] = [kwargs[n] for n in names]
        else:
            names, tensors = self.names_for(len(args)), args
        return tuple(t for _, t in self.process.run(names, tensors))

    def close(self) -> None:
        self.process.close()


def cpp_model(path: str | os.PathLike[str], progress: ProgressFn | None = None) -> Any:
    """A ``torch.nn.Module`` calling the artifact in the C++ runner (see :func:`cpp_target`)."""
    return _open(path, progress)[0]


def _open(path: str | os.PathLike[str], progress: ProgressFn | None) -> tuple[Any, ArtifactMeta | None]:
    process = RunnerProcess(path, progress)
    meta = ArtifactMeta.from_text(process.meta_text, str(path)) if process.meta_text else None
    artifact = ArtifactModel(RunnerCall(process, meta), meta, get_format(process.format), str(path))
    return as_module(artifact), meta


def cpp_target(path: str | os.PathLike[str], progress: ProgressFn | None = None) -> LoadedTarget:
    """The artifact at ``path`` as a LoadedTarget run by the C++ runner (kind ``FORMAT+cpp``).

    Raises :class:`~parity.runner.build.RunnerError` (exit 2) for a format the runner does
    not load, no compiler, or an artifact the runner cannot open.
    """
    started = time.perf_counter()
    model, meta = _open(path, progress)
    examples = _example_rows(meta)
    p = Path(path)
    pipeline = Pipeline(model=model, preprocess=collate, postprocess=None, assets=[str(p)],
                        example_inputs=examples,
                        batch_size=max(1, len(examples)) if examples else 8, name=f"{p.name} ({CPP})")
    kind = f"{model.artifact.format}+{CPP}"
    return LoadedTarget(pipeline=pipeline, spec=str(path), kind=kind, load_seconds=time.perf_counter() - started)


def runner_pid(model: Any) -> int | None:
    """The runner process id behind a model made here (None for any other model)."""
    artifact = getattr(model, "artifact", None)
    call = getattr(artifact, "runner", None)
    return call.process.pid if isinstance(call, RunnerCall) else None
