"""Oracles: the command whose exit code judges a trial environment.

Exit 0 is GOOD, 1 is BAD, anything else (2, another code, a signal, a timeout) means
the oracle could not judge, and the search never blames a change on such a run.
``verify:DIR`` and ``bench:BASELINE`` run parity itself inside the trial, where parity
keeps that contract (2: could not do the job, 3: a bug in parity); a trial whose
interpreter has no parity at all ("No module named parity", exit 1) is "could not
judge" too. Bisect installs the running parity into every trial, so that is rare.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity._io import is_url, read_json, read_url_bytes, url_shown, url_text
from parity.bisection.ddmin import Verdict
from parity.bisection.trials import TrialEnv
from parity.errors import EXIT_FINDING, EXIT_OK, BisectError
from parity.target.policy import RecordedTarget, recorded_target, target_of_record

#: What Python prints for ``python -m parity`` when parity is not importable.
_NO_PARITY = re.compile(r"No module named '?parity'?(?:$|[\s)])", re.MULTILINE)

#: stderr lines that mean "compiled against something else than what is importable",
#: which an overlay can cause and a full venv cures.
_BINARY_MISMATCH = (
    "undefined symbol",
    "binary incompatibility",
    "compiled using NumPy 1.x cannot be run in",
    "module compiled against ABI version",
    "numpy.core.multiarray failed to import",
    "version `GLIBC",
)


@dataclass
class OracleRun:
    """One oracle process. ``exit_code`` is negative for a signal, None on timeout."""

    exit_code: int | None
    verdict: Verdict
    seconds: float
    stderr_tail: str

    def to_json(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "verdict": self.verdict.value,
                "seconds": round(self.seconds, 4), "stderr_tail": self.stderr_tail}


class Oracle:
    """Base class: runs ``argv(python)`` inside a trial environment."""

    label = "oracle"
    #: True when the oracle runs parity itself (then parity must start in the trial)
    runs_parity = False

    def argv(self, python: Path) -> list[str]:
        raise NotImplementedError

    def classify(self, exit_code: int | None, stderr: str) -> Verdict:
        if exit_code == EXIT_OK:
            return Verdict.GOOD
        if exit_code == EXIT_FINDING:
            return Verdict.BAD
        return Verdict.UNJUDGED

    def check(self, env: TrialEnv) -> None:
        """Raise BisectError when the command cannot be found in ``env``."""
        program = self.argv(env.python)[0]
        if os.sep in program:
            if not (Path(program).is_file() and os.access(program, os.X_OK)):
                raise BisectError(f"oracle command {program!r}: no such executable file",
                                  fix="check the command after --")
            return
        if shutil.which(program, path=env.environ()["PATH"]) is None:
            raise BisectError(f"oracle command {program!r}: not found on PATH",
                              fix="check the command after -- (or give its full path)")

    def run(self, env: TrialEnv, timeout: float | None = None) -> OracleRun:
        start = time.perf_counter()
        try:
            proc = subprocess.run(self.argv(env.python), env=env.environ(), capture_output=True, text=True,
                                  timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return OracleRun(None, Verdict.UNJUDGED, time.perf_counter() - start, f"timed out after {timeout} s")
        except OSError as exc:
            return OracleRun(None, Verdict.UNJUDGED, time.perf_counter() - start, str(exc))
        seconds = time.perf_counter() - start
        return OracleRun(proc.returncode, self.classify(proc.returncode, proc.stderr), seconds, _tail(proc.stderr))

    def reproduce(self, env: TrialEnv) -> str:
        """One shell line that re-runs this oracle in ``env``, from this folder (the
        command may name files relative to it)."""
        parts = ["cd", shlex.quote(os.getcwd()), "&&"]
        for name, value in env.env_prefix().items():
            if value.endswith(f"{os.pathsep}$PATH"):
                parts.append(f"{name}={shlex.quote(value[: -len('$PATH')])}\"$PATH\"")
            else:
                parts.append(f"{name}={shlex.quote(value)}")
        return " ".join([*parts, shlex.join(self.argv(env.python))])

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label}


class CommandOracle(Oracle):
    """The user's command; ``python`` in it resolves to the trial's interpreter
    (its folder is first on PATH) and ``$PARITY_BISECT_PYTHON`` names it."""

    def __init__(self, command: Sequence[str]) -> None:
        if not command:
            raise BisectError("empty oracle command", fix="give the command after --")
        self.command = list(command)
        self.label = shlex.join(self.command)

    def argv(self, python: Path) -> list[str]:
        return list(self.command)


class ParityOracle(Oracle):
    """``parity verify`` / ``parity bench --against`` run with the trial's interpreter."""

    runs_parity = True

    def __init__(self, args: Sequence[str], label: str, chosen: RecordedTarget | None = None) -> None:
        self.args = list(args)
        self.label = label
        self.chosen = chosen  # the recorded target it runs, when TARGET was not given

    def argv(self, python: Path) -> list[str]:
        return [str(python), "-m", "parity", *self.args]

    def classify(self, exit_code: int | None, stderr: str) -> Verdict:
        # `python -m parity` without parity: Python's own exit 1, not a divergence.
        if exit_code == 1 and _NO_PARITY.search(stderr):
            return Verdict.UNJUDGED
        return super().classify(exit_code, stderr)

    def check(self, env: TrialEnv) -> None:
        """Raise BisectError when parity cannot start in ``env`` (the good environment)."""
        try:
            proc = subprocess.run([*self.argv(env.python)[:3], "--version"], env=env.environ(),
                                  capture_output=True, text=True, timeout=300, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BisectError(f"{env.python}: cannot run parity with the good environment's interpreter ({exc})",
                              fix="pass a good snapshot whose interpreter exists here") from None
        if proc.returncode != 0:
            last = _tail(proc.stderr or proc.stdout, 1) or f"exit code {proc.returncode}"
            raise BisectError(f"parity cannot run in the good environment ({env.python}): {last}",
                              fix="install parity's dependencies there (`pip show parity` lists them), "
                                  "or give your own oracle command after --")


_USAGE = "parity bisect ... --oracle {kind}:{arg} --target path/to/serving.py:build"


def verify_oracle(record_dir: str | os.PathLike[str], target: str | None = None) -> ParityOracle:
    """``parity verify DIR TARGET``. Without ``target``, the recorded one, only when
    :func:`parity.target.policy.recorded_target` allows it (records never choose code)."""
    if is_url(record_dir):  # a record on object storage: each trial reads it (and its cache) itself
        where, shown = url_text(record_dir), url_shown(url_text(record_dir))
        if not _url_is_record(where):
            raise BisectError(f"--oracle verify:{shown}: no record there (no manifest.json)",
                              fix="pass the URL given to `parity record -o`")
    else:
        path = Path(record_dir)
        if not (path / "manifest.json").is_file():
            raise BisectError(f"--oracle verify:{path}: not a record directory (no manifest.json)",
                              fix="pass a directory written by `parity record`")
        where, shown = str(path.resolve()), str(path)
    chosen = None
    if target is None:
        chosen = target_of_record(where, usage=_USAGE.format(kind="verify", arg=shown))
        target = chosen.spec
    return ParityOracle(["verify", where, target], f"parity verify {shown} {target}", chosen)


def _url_is_record(url: str) -> bool:
    """Whether ``url/manifest.json`` exists; BisectError (one line) when storage cannot say."""
    try:
        read_url_bytes(f"{url}/manifest.json", max_bytes=256 << 20, error=BisectError)
    except FileNotFoundError:
        return False
    return True


def bench_oracle(baseline: str | os.PathLike[str], target: str | None = None) -> ParityOracle:
    """``parity bench TARGET --against BASELINE``. BASELINE: a bench JSON file or a record
    directory holding bench.json; without ``target``, the one the baseline measured, under
    the same rule as a record's (records never choose code)."""
    path = Path(baseline)
    fix = "pass a file written by `parity bench -o FILE` or a record made with --bench"
    where = path / "bench.json" if path.is_dir() else path
    data = read_json(where, "a bench result", fix=fix)
    if not isinstance(data, dict) or "target" not in data:
        raise BisectError(f"--oracle bench:{path}: not a bench result (no \"target\")", fix=fix)
    chosen = None
    if target is None:
        chosen = recorded_target(data.get("target"), where, path if path.is_dir() else None,
                                 usage=_USAGE.format(kind="bench", arg=path))
        target = chosen.spec
    return ParityOracle(["bench", target, "--against", str(path.resolve())], f"parity bench {target} --against {path}",
                        chosen)


def oracle_from_spec(spec: str | None, command: Sequence[str], good_spec: str, bad_spec: str,
                     target: str | None = None) -> Oracle:
    """``--oracle verify:DIR | bench:FILE``, or ``-- COMMAND``. With neither: ``parity
    verify`` on the side that is a record directory, the good side first (a record is
    the reference, made where the model was right). ``target``: TARGET for parity's
    oracles (default: the recorded one, when parity may run it)."""
    if spec and command:
        raise BisectError("both --oracle and a command after -- were given", fix="keep one of them")
    if command:
        if target is not None:
            raise BisectError("--target is for --oracle verify/bench, not a command after --",
                              fix="put TARGET into your command instead")
        return CommandOracle(command)
    if spec:
        kind, _, arg = spec.partition(":")
        if kind == "verify" and arg:
            return verify_oracle(arg, target)
        if kind == "bench" and arg:
            return bench_oracle(arg, target)
        raise BisectError(f"--oracle {spec}: unknown oracle", fix="use verify:RECORD_DIR, bench:BASELINE.json or -- COMMAND")
    for side in (good_spec, bad_spec):
        if (_url_is_record(url_text(side)) if is_url(side) else (Path(side) / "manifest.json").is_file()):
            return verify_oracle(side, target)
    raise BisectError("no oracle: neither --good nor --bad is a record directory",
                      fix="pass --oracle verify:DIR, --oracle bench:FILE or -- COMMAND")


def majority(runs: Sequence[OracleRun], planned: int | None = None) -> Verdict:
    """GOOD or BAD when more than half of ``planned`` runs (default: those given) say
    so, else UNJUDGED."""
    total = planned or len(runs)
    counts = Counter(run.verdict for run in runs)
    for verdict in (Verdict.BAD, Verdict.GOOD):
        if counts[verdict] * 2 > total:
            return verdict
    return Verdict.UNJUDGED


def decided(runs: Sequence[OracleRun], planned: int) -> bool:
    """True once more runs cannot change :func:`majority` of ``planned`` runs."""
    if majority(runs, planned) is not Verdict.UNJUDGED:
        return True
    counts = Counter(run.verdict for run in runs)
    left = planned - len(runs)
    return all((counts[v] + left) * 2 <= planned for v in (Verdict.BAD, Verdict.GOOD))


def binary_mismatch(runs: Sequence[OracleRun]) -> str | None:
    """The stderr line that shows a binary incompatibility, if any run shows one."""
    for run in runs:
        for line in run.stderr_tail.splitlines():
            if any(marker in line for marker in _BINARY_MISMATCH):
                return line.strip()[:200]
    return None


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])[-2000:]
