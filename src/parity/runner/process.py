"""Talk to the C++ runner: one long-lived process per artifact, or one timing run.

Tensors cross as safetensors files in a private temporary folder; the runner names its
outputs the way parity flattens them (``output``, ``last_hidden_state``, ``0.1``...).
The runner process links libtorch alone: ``libpython_mapped`` in its replies says
whether any libpython was mapped into it (it never should be).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._io import atomic_write_bytes, check_not_lfs_pointer
from parity._text import one_line
from parity.progress import ProgressFn
from parity.runner.build import RunnerError, executable
from parity.target.formats import detect, is_artifact

#: formats the C++ runner loads (parity.target.formats names)
FORMATS = ("torchscript", "aoti")
_START_TIMEOUT_S = 600


def runner_format(path: str | os.PathLike[str]) -> str:
    """The artifact's format name when the C++ runner can load it, else :class:`RunnerError`."""
    p = Path(path)
    if not is_artifact(p):
        raise RunnerError(f"{p}: not an exported artifact; the C++ runner runs TorchScript (.pt) and "
                          "AOTInductor (.pt2) files",
                          fix=f"export it first: `parity export {p} --format torchscript -o model.pt`")
    if not p.is_file():
        raise RunnerError(f"{p}: no such file", fix="pass the path of a TorchScript .pt or AOTInductor .pt2 file")
    check_not_lfs_pointer(p)
    fmt = detect(p)
    if fmt is None or fmt.name not in FORMATS:
        what = fmt.title if fmt is not None else (p.suffix or "no suffix")
        raise RunnerError(f"{p}: the C++ runner loads TorchScript and AOTInductor artifacts, not {what}",
                          fix="export with --format torchscript or --format aoti, or leave out --runner cpp")
    return fmt.name


def write_tensors(path: Path, names: Sequence[str], tensors: Sequence[Any]) -> None:
    """Save CPU, contiguous copies of ``tensors`` under ``names`` as safetensors."""
    from safetensors.torch import save

    try:
        data = save({n: t.detach().cpu().contiguous() for n, t in zip(names, tensors)})
    except (TypeError, ValueError, AttributeError) as exc:
        raise RunnerError(f"the inputs cannot be passed to the C++ runner ({one_line(str(exc))[:200]})",
                          fix="feed tensors of a safetensors dtype (float, int, bool)") from None
    atomic_write_bytes(path, data)


def read_tensors(path: Path, order: Sequence[str]) -> list[tuple[str, Any]]:
    """(name, tensor) pairs of a safetensors file the runner wrote, in ``order``."""
    from safetensors.torch import load

    loaded = load(path.read_bytes())
    return [(name, loaded[name]) for name in order]


def _failure(message: str, artifact: str) -> RunnerError:
    return RunnerError(f"{artifact}: the C++ runner failed: {one_line(message)[:400]}",
                       fix="check that the artifact loads in Python (`parity bench ARTIFACT`); "
                           "re-export it with this torch version")


class RunnerProcess:
    """One runner process serving requests for one artifact (``--serve`` mode).

    ``meta_text`` is the artifact's stored ``parity.artifact/1`` document ("" when none),
    ``pid`` the process id and ``libpython_mapped`` what the runner saw in its own
    ``/proc/self/maps``. Thread-safe: requests are sent one at a time.
    """

    def __init__(self, artifact: str | os.PathLike[str], progress: ProgressFn | None = None) -> None:
        self.artifact = str(artifact)
        self.format = runner_format(artifact)
        exe = executable(progress)
        self._dir = Path(tempfile.mkdtemp(prefix="parity-runner-"))
        self._lock = threading.Lock()
        self._count = 0
        self._proc = subprocess.Popen(
            [str(exe), "--format", self.format, "--model", self.artifact, "--serve", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        ready = self._reply()
        self.pid = int(ready["pid"])
        self.libpython_mapped = bool(ready["libpython_mapped"])
        self.load_seconds = float(ready["load_seconds"])
        self.meta_text = str(ready.get("meta") or "")

    def _reply(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr is not None else ""
            self.close()
            raise _failure(err.strip() or f"it exited with status {self._proc.wait()}", self.artifact)
        return dict(json.loads(line))

    def run(self, names: Sequence[str], tensors: Sequence[Any]) -> list[tuple[str, Any]]:
        """Run one request; (output name, tensor) pairs in the runner's output order."""
        with self._lock:
            self._count += 1
            src, dst = self._dir / f"in-{self._count}.safetensors", self._dir / f"out-{self._count}.safetensors"
            write_tensors(src, names, tensors)
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(f"{src}\t{dst}\t{','.join(names)}\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise _failure("the process is gone", self.artifact) from None
            reply = self._reply()
            src.unlink(missing_ok=True)
            if not reply.get("ok"):
                raise _failure(str(reply.get("error")), self.artifact)
            try:
                return read_tensors(dst, list(reply["outputs"]))
            finally:
                dst.unlink(missing_ok=True)

    def close(self) -> None:
        """End the process (it stops at end of input) and remove the exchange folder."""
        if self._proc.poll() is None:
            try:
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RunnerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            self.close()


@dataclass
class RunnerTiming:
    """Per-request latencies (seconds) of a timing run inside the C++ runner."""

    artifact: str
    format: str
    threads: int
    batch_size: int
    latencies: list[float]
    wall_seconds: float
    load_seconds: float
    pid: int
    libpython_mapped: bool
    torch_threads: int
    warmup: int
    notes: list[str] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0-1) of the latencies, nearest rank; None without samples."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def to_json(self) -> dict[str, Any]:
        return {"schema": "parity.runner-timing/1", "runner": "cpp", "artifact": self.artifact,
                "format": self.format, "threads": self.threads, "batch_size": self.batch_size,
                "requests": len(self.latencies), "wall_seconds": self.wall_seconds,
                "requests_per_s": self.requests_per_s, "items_per_s": self.requests_per_s * self.batch_size,
                "p50": self.percentile(0.5), "p90": self.percentile(0.9), "p99": self.percentile(0.99),
                "load_seconds": self.load_seconds, "pid": self.pid, "libpython_mapped": self.libpython_mapped,
                "torch_threads": self.torch_threads, "warmup": self.warmup, "samples": self.latencies,
                "notes": self.notes}


def time_artifact(artifact: str | os.PathLike[str], names: Sequence[str], tensors: Sequence[Any], *,
                  threads: int = 1, seconds: float | None = 2.0, iterations: int | None = None,
                  warmup: int = 3, torch_threads: int | None = None,
                  progress: ProgressFn | None = None) -> RunnerTiming:
    """Time requests of ``tensors`` from ``threads`` C++ threads sharing one loaded model.

    Runs for ``seconds`` (or ``iterations`` requests in all) after ``warmup`` calls;
    ``torch_threads``: libtorch's intra-op threads (None: libtorch's default).
    """
    fmt = runner_format(artifact)
    if threads < 1 or (seconds is None and iterations is None):
        raise RunnerError(f"--threads {threads}: need threads >= 1 and a duration or a request count",
                          fix="pass e.g. threads=2, seconds=2")
    exe = executable(progress)
    with tempfile.TemporaryDirectory(prefix="parity-runner-") as tmp:
        src = Path(tmp) / "inputs.safetensors"
        write_tensors(src, names, tensors)
        argv = [str(exe), "--format", fmt, "--model", str(artifact), "--inputs", str(src),
                "--input-names", ",".join(names), "--threads", str(threads), "--warmup", str(warmup)]
        argv += ["--iterations", str(iterations)] if iterations else ["--seconds", repr(float(seconds or 0))]
        if torch_threads:
            argv += ["--torch-threads", str(torch_threads)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=_START_TIMEOUT_S
                              + (seconds or 0) * 2)
    if done.returncode != 0:
        raise _failure(done.stderr.strip() or f"exit status {done.returncode}", str(artifact))
    doc = json.loads(done.stdout)
    timing = doc["timing"]
    batch = int(tensors[0].shape[0]) if tensors and getattr(tensors[0], "dim", lambda: 0)() else 1
    return RunnerTiming(artifact=str(artifact), format=fmt, threads=threads, batch_size=batch,
                        latencies=[float(x) for x in timing["latencies"]], wall_seconds=float(timing["wall_seconds"]),
                        load_seconds=float(doc["load_seconds"]), pid=int(doc["pid"]),
                        libpython_mapped=bool(doc["libpython_mapped"]), torch_threads=int(doc["torch_threads"]),
                        warmup=int(timing["warmup"]))
