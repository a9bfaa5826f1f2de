"""Run exported artifacts outside Python: a C++ runner built against the wheel's libtorch.

``executable()`` builds (once per torch version) and returns the runner program;
``run_artifact(path, inputs)`` runs one request and returns the outputs under parity's
names; ``time_artifact(...)`` times requests from N C++ threads (no GIL);
``cpp_target(path)`` is the artifact as a TARGET whose model calls run in the runner
(``--runner cpp``). Formats: TorchScript (``.pt``) and AOTInductor (``.pt2``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from parity.runner.build import RunnerError, executable
from parity.runner.process import FORMATS, RunnerProcess, RunnerTiming, runner_format, time_artifact
from parity.runner.targets import cpp_model, cpp_target

__all__ = ["FORMATS", "RunnerError", "RunnerProcess", "RunnerTiming", "cpp_model", "cpp_target", "executable",
           "run_artifact", "runner_format", "time_artifact"]


def run_artifact(path: str | os.PathLike[str], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``{input name: tensor}`` through the artifact in the C++ runner, once.

    Returns ``{output name: tensor}`` in the artifact's output order (names as parity
    flattens them: ``output`` for one tensor, the eager names with parity metadata).
    """
    with RunnerProcess(path) as process:
        return dict(process.run(list(inputs), list(inputs.values())))
