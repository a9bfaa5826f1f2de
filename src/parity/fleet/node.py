"""What runs on each node: ``parity snapshot`` and ``parity verify``, as subprocesses.

The Ray task only starts them, with the node's own interpreter (the one the Ray worker
runs) and the node's own environment variables, so what is installed there, its thread
settings and its variables are what gets verified: not the driver's. The variables Ray
itself sets in a worker for a task (``OMP_NUM_THREADS`` to the task's CPUs when the node
had none; the visible-devices variables of accelerators) get back the value the worker
started with, or are taken out when it started without them (Linux:
``/proc/self/environ`` holds the start-up environment).

This module imports no Ray: the driver wraps :func:`run_on_node` in ``ray.remote``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Variables Ray sets in a worker per task, which the node's own processes do not have.
RAY_INJECTED = ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                "ONEAPI_DEVICE_SELECTOR", "NEURON_RT_VISIBLE_CORES", "TPU_VISIBLE_CHIPS", "HABANA_VISIBLE_MODULES")
_TAIL_CHARS = 2000


def node_environ(base: dict[str, str] | None = None, initial: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a process of this node would have: this process's, with what Ray
    set in its worker after it started undone (``initial``: the environment it started with)."""
    env = dict(os.environ if base is None else base)
    started_with = _initial_environ() if initial is None else initial
    if started_with is not None:
        for name in RAY_INJECTED:
            if name in started_with:
                env[name] = started_with[name]
            else:
                env.pop(name, None)
    return env


def _initial_environ() -> dict[str, str] | None:
    try:
        data = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode("utf-8", "replace").partition("=") for item in data.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def run_on_node(verify_args: Sequence[str], cwd: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Snapshot this node's environment, then run ``parity verify VERIFY_ARGS --json`` here.

    Returns plain JSON: the node's interpreter and hostname, the verify exit code, its
    JSON result (None when it printed none) and stderr's tail, and the snapshot (None
    with ``snapshot_error`` when it could not be taken).
    """
    env = node_environ()
    workdir = cwd if cwd and os.path.isdir(cwd) else None
    python = sys.executable
    out: dict[str, Any] = {"python": python, "hostname": socket.gethostname(), "cwd": workdir or os.getcwd()}
    with tempfile.TemporaryDirectory(prefix="parity-fleet-") as tmp:
        snap_file = Path(tmp) / "snapshot.json"
        snap = _run([python, "-m", "parity", "snapshot", "--runtime", "-o", str(snap_file)], env, workdir, timeout)
        try:
            out["snapshot"], out["snapshot_error"] = json.loads(snap_file.read_text(encoding="utf-8")), None
        except (OSError, ValueError):
            out["snapshot"], out["snapshot_error"] = None, snap["stderr_tail"] or f"exit code {snap['exit_code']}"
    verify = _run([python, "-m", "parity", "verify", *verify_args, "--json"], env, workdir, timeout)
    try:
        result = json.loads(verify.pop("stdout")) if verify["exit_code"] in (0, 1) else None
    except ValueError:
        result = None
    out["verify"] = {**verify, "result": result if isinstance(result, dict) else None}
    return out


def _run(argv: list[str], env: dict[str, str], cwd: str | None, timeout: float | None) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"exit_code": None, "stdout": "", "stderr_tail": f"timed out after {timeout} s",
                "seconds": round(time.perf_counter() - start, 3)}
    except OSError as exc:
        return {"exit_code": None, "stdout": "", "stderr_tail": str(exc), "seconds": 0.0}
    return {"exit_code": proc.returncode, "stdout": proc.stdout, "stderr_tail": proc.stderr[-_TAIL_CHARS:],
            "seconds": round(time.perf_counter() - start, 3)}
