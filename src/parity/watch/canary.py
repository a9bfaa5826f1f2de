"""The golden canary: the golden record's inputs through the live pipeline, verified.

Exactly ``parity verify``'s steps (the same functions of
:mod:`parity.comparison.verification`): record the live pipeline into a temporary record
with the golden record's inputs, capture level, batch size and seed, compare the two
records (stages, layers, assets, weights, runtime state, environment), replay divergent
modules to find the layer that introduces an error (capture=full), name the probable
cause and decide the verdict. Only the ``target`` differs: not code loaded from a spec,
but the pipeline object the server is serving, as loaded now.

Sharing the model: the canary runs the very model object requests use. While it runs its
hooks sit on every submodule, so requests are held off (the watch's gate, exclusive side)
for the recording, about one forward per golden batch plus hashing the weights and asset
files, and for the replay when something diverged; comparing the records runs beside the
requests. The recording forks torch's RNG, runs under ``no_grad`` and changes nothing in
the model: a model left in training mode is reported, not put back in eval mode.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from parity.comparison.result import VerifyResult, decide_verdict
from parity.comparison.tolerances import TolerancePolicy
from parity.records.format import Record
from parity.target import LoadedTarget, Pipeline
from parity.watch.gate import Gate


def run_canary(golden: Record, inputs: Any, pipeline: Pipeline, policy: TolerancePolicy, gate: Gate,
               label: str) -> VerifyResult:
    """Verify ``pipeline`` (live) against ``golden`` on the golden ``inputs``."""
    # verify()'s own steps; verify() itself loads its target from a spec, the canary has
    # the live object.
    from parity.comparison import verification as steps

    loaded = LoadedTarget(pipeline=pipeline, spec=label, kind="pipeline", load_seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="parity-canary-") as tmp:
        with gate.exclusive():
            rec_b = steps._record_b(golden, loaded, inputs, Path(tmp) / "b")
        result, rows = steps._compare_records(golden, rec_b, policy, {"record": None, "target": label})
        if result.first_divergent_layer:
            with gate.exclusive():
                steps._classify(golden, result, rows, pipeline)
    steps._explain(result, golden)
    decide_verdict(result)
    return result


def warm_up(golden: Record) -> None:
    """Take the environment snapshot once outside the gate: the first one in a process
    costs about a second (package metadata), later ones milliseconds."""
    from parity.comparison.findings import env_is_partial

    if not env_is_partial(golden.env):
        from parity.env import snapshot

        snapshot(runtime=True)
