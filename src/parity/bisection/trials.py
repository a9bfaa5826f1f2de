"""Trial environments: the good environment with some bad-side packages swapped in.

Two modes, and the result says which one each trial used:

- ``overlay``: the base interpreter (the good environment) unchanged, plus a
  per-trial directory holding only the packages whose wanted version differs from
  the base, installed with ``uv pip install --no-deps --target`` (pip as fallback)
  and put first on ``PYTHONPATH``. torch is never reinstalled unless it is itself
  in the trial. Costs seconds.
- ``venv``: a fresh virtual environment on the base interpreter, installed from an
  exact lock of the wanted package set. Used when an overlay cannot express the
  trial (a package must be absent) or the overlay hit a binary incompatibility.

``base`` is the degenerate overlay where nothing needs installing. Environments are
cached by content (hash of interpreter, package set and index options) under the
cache dir, so a trial the search repeats, or a later bisect, costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._io import atomic_dir, atomic_write_text, cache_root
from parity.bisection.selfwheel import ParityWheel
from parity.errors import BisectError

#: A marker written last into every cached environment: its presence means complete.
_DONE = ".parity-trial.json"
_INSTALL_TIMEOUT_S = 900


class InstallError(Exception):
    """A trial environment could not be built (the trial is SKIP, never blamed)."""


def default_cache_dir() -> Path:
    """``$PARITY_BISECT_CACHE``, else ``$XDG_CACHE_HOME/parity/bisect``, else
    ``~/.cache/parity/bisect``."""
    if os.environ.get("PARITY_BISECT_CACHE"):
        return Path(os.environ["PARITY_BISECT_CACHE"])
    return cache_root() / "bisect"


@dataclass(frozen=True)
class IndexOptions:
    """The user's package-source options, passed verbatim to uv or pip (which
    otherwise use the user's own configuration; no index host is ever assumed)."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False

    def args(self) -> list[str]:
        out: list[str] = []
        for folder in self.find_links:
            out += ["--find-links", folder]
        if self.index_url:
            out += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        if self.no_index:
            out.append("--no-index")
        return out

    def check(self) -> None:
        """Refuse a --find-links folder that does not exist (before any trial runs)."""
        for folder in self.find_links:
            if "://" not in folder and not Path(folder).is_dir():
                raise BisectError(f"--find-links {folder}: no such folder", fix="pass a folder of wheels or a URL")

    def to_json(self) -> dict[str, Any]:
        return {
            "find_links": list(self.find_links), "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls), "no_index": self.no_index,
        }


class Installer:
    """Installs exact requirements without dependencies; subclasses: uv, pip."""

    name = "installer"

    def install_target(self, python: Path, target: Path, reqs: Sequence[str], index: IndexOptions) -> None:
        raise NotImplementedError

    def create_venv(self, python: Path, venv: Path) -> Path:
        raise NotImplementedError

    def install_venv(self, venv_python: Path, reqs: Sequence[str], index: IndexOptions) -> None:
        raise NotImplementedError

    def command_line(self, python: Path, target: Path, reqs: Sequence[str], index: IndexOptions) -> list[str]:
        """The overlay install command, for the reproduce line and the benchmark."""
        raise NotImplementedError


class UvInstaller(Installer):
    name = "uv"

    def __init__(self, uv: str) -> None:
        self.uv = uv

    def command_line(self, python: Path, target: Path, reqs: Sequence[str], index: IndexOptions) -> list[str]:
        return [self.uv, "pip", "install", "--quiet", "--no-deps", "--python", str(python),
                "--target", str(target), *index.args(), *reqs]

    def install_target(self, python: Path, target: Path, reqs: Sequence[str], index: IndexOptions) -> None:
        _run_install(self.command_line(python, target, reqs, index))

    def create_venv(self, python: Path, venv: Path) -> Path:
        # --relocatable: the venv is built in a temporary sibling and renamed into the cache.
        _run_install([self.uv, "venv", "--quiet", "--relocatable", "--python", str(python), str(venv)])
        return venv / "bin" / "python"

    def install_venv(self, venv_python: Path, reqs: Sequence[str], index: IndexOptions) -> None:
        _run_install([self.uv, "pip", "install", "--quiet", "--no-deps", "--python", str(venv_python),
                      *index.args(), *reqs])


class PipInstaller(Installer):
    """pip, the base interpreter's own, or this one's driving it with ``pip --python``."""

    name = "pip"

    def __init__(self, pip: Sequence[str]) -> None:
        self.pip = list(pip)

    def command_line(self, python: Path, target: Path, reqs: Sequence[str], index: IndexOptions) -> list[str]:
        return [*self.pip, "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                "--no-warn-script-location", "--target", str(target), *index.args(), *reqs]

    def install_target(self, python: Path, target: Path, reqs: Sequence[str], index: IndexOptions) -> None:
        _run_install(self.command_line(python, target, reqs, index))

    def create_venv(self, python: Path, venv: Path) -> Path:
        _run_install([str(python), "-m", "venv", str(venv)])
        return venv / "bin" / "python"

    def install_venv(self, venv_python: Path, reqs: Sequence[str], index: IndexOptions) -> None:
        _run_install([str(venv_python), "-m", "pip", "install", "--quiet", "--no-deps",
                      "--disable-pip-version-check", *index.args(), *reqs])


def _run_install(argv: list[str]) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise InstallError(_last_line(proc.stderr or proc.stdout) or f"exit code {proc.returncode}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-3:])[:400]


def find_uv() -> str | None:
    """uv on PATH, beside this interpreter, or from the ``uv`` Python package."""
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).parent / "uv"
    if sibling.is_file():
        return str(sibling)
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def find_installer(python: Path, prefer: str | None = None) -> Installer:
    """uv when available (or asked for), else pip of the base interpreter."""
    uv = find_uv() if prefer in (None, "uv") else None
    if uv:
        return UvInstaller(uv)
    if prefer == "uv":
        raise BisectError("uv not found", fix="install uv (pip install uv) or use the pip installer")
    if _has_pip(python):
        return PipInstaller([str(python), "-m", "pip"])
    if _has_pip(Path(sys.executable)):
        # pip >= 22.3 can install for another interpreter (a venv made without pip).
        return PipInstaller([sys.executable, "-m", "pip", "--python", str(python)])
    raise BisectError(f"{python}: neither uv nor pip is available to build trial environments",
                      fix="install uv (pip install uv) or pip into that interpreter")


def _has_pip(python: Path) -> bool:
    probe = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, check=False)
    return probe.returncode == 0


@dataclass
class TrialEnv:
    """A built trial environment: how to run a command in it.

    ``mode``: ``base`` (nothing to install), ``overlay`` or ``venv``; ``why``: why a
    venv was needed; ``build_seconds``: 0.0 when it came from the cache.
    """

    mode: str
    python: Path
    path: Path | None
    overlay: list[str] = field(default_factory=list)
    why: str | None = None
    cached: bool = False
    build_seconds: float = 0.0
    #: folders put on PYTHONPATH after the overlay (the running parity, for its oracles)
    extra_paths: list[Path] = field(default_factory=list)

    def _import_path(self) -> list[str]:
        first = [str(self.path)] if self.mode == "overlay" and self.path is not None else []
        return first + [str(p) for p in self.extra_paths]

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables for a process that must run inside this trial."""
        env = dict(os.environ if base is None else base)
        bin_dir = str(self.python.parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["PARITY_BISECT_PYTHON"] = str(self.python)
        if self._import_path():
            env["PYTHONPATH"] = os.pathsep.join(p for p in (*self._import_path(), env.get("PYTHONPATH", "")) if p)
        if self.mode == "venv" and self.path is not None:
            env["VIRTUAL_ENV"] = str(self.path)
        return env

    def env_prefix(self) -> dict[str, str]:
        """The variables a shell line must set to reproduce this trial."""
        out = {"PATH": f"{self.python.parent}{os.pathsep}$PATH"}
        if self._import_path():
            out["PYTHONPATH"] = os.pathsep.join(self._import_path())
        if self.mode == "venv" and self.path is not None:
            out["VIRTUAL_ENV"] = str(self.path)
        return out


def base_versions(python: Path, names: Sequence[str]) -> dict[str, str | None]:
    """Installed version (local label included) of each name in ``python``'s environment.

    Only the changed names matter: packages outside the changed set are whatever the
    base environment has, which is the good environment by construction.
    """
    script = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        "for n in json.loads(sys.argv[1]):\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        # Same environment variables as the oracle will see, PYTHONPATH included.
        proc = subprocess.run([str(python), "-c", script, json.dumps(list(names))],
                              capture_output=True, text=True, timeout=120, check=False)
    except OSError as exc:
        raise BisectError(f"{python}: cannot run the good environment's interpreter ({exc})",
                          fix="pass a snapshot whose python executable exists, or run parity from the good environment") from exc
    if proc.returncode != 0:
        raise BisectError(f"{python}: cannot list installed packages ({_last_line(proc.stderr)})",
                          fix="check that this interpreter starts")
    versions: dict[str, str | None] = json.loads(proc.stdout)
    return versions


class TrialBuilder:
    """Builds and caches trial environments on one base interpreter.

    ``base``: installed versions of the changed names in the base environment;
    ``venv_requirements``: wanted package set -> exact requirement lines for the
    full-venv fallback (comes from the lock of the good snapshot with the trial applied);
    ``requirement``: (name, version) -> the line that installs it (default
    ``name==version``; a package installed from a URL is asked for by that URL);
    ``parity``: the running parity as a wheel, installed into every full venv (and
    put on PYTHONPATH of base and overlay trials when ``parity_on_path``), so that
    ``parity verify``/``bench`` oracles can run in every trial.
    """

    def __init__(
        self,
        python: Path,
        base: Mapping[str, str | None],
        index: IndexOptions,
        cache_dir: Path,
        installer: Installer,
        venv_requirements: Callable[[Mapping[str, str | None]], list[str]],
        requirement: Callable[[str, str], str] | None = None,
        parity: ParityWheel | None = None,
        parity_on_path: bool = False,
    ) -> None:
        self.python = python
        self.base = dict(base)
        self.index = index
        self.cache_dir = cache_dir
        self.installer = installer
        self.venv_requirements = venv_requirements
        self.requirement = requirement or (lambda name, version: f"{name}=={version}")
        self.parity = parity
        self.extra_paths = [parity.site] if parity is not None and parity_on_path else []

    def overlay_requirements(self, wanted: Mapping[str, str | None]) -> list[str]:
        """The requirement line of each wanted package the base does not already have."""
        return sorted(self.requirement(n, v) for n, v in wanted.items() if v is not None and self.base.get(n) != v)

    def needs_venv(self, wanted: Mapping[str, str | None]) -> str | None:
        """Why an overlay cannot express ``wanted``, or None when it can."""
        absent = sorted(n for n, v in wanted.items() if v is None and self.base.get(n) is not None)
        if absent:
            return f"must be absent: {', '.join(absent)} (an overlay can add, not remove)"
        return None

    def build(self, wanted: Mapping[str, str | None], force_venv: str | None = None) -> TrialEnv:
        """The trial environment for ``wanted`` (name -> version, None = absent).

        Raises :class:`InstallError` when it cannot be built (the trial is SKIP).
        """
        why = force_venv or self.needs_venv(wanted)
        if why:
            return self._venv(wanted, why)
        reqs = self.overlay_requirements(wanted)
        if not reqs:
            return TrialEnv("base", self.python, None, extra_paths=list(self.extra_paths))
        return self._overlay(reqs)

    def _key(self, kind: str, reqs: Sequence[str]) -> str:
        parity = self.parity.digest if self.parity is not None and kind == "venv" else None
        blob = json.dumps({"kind": kind, "python": str(self.python), "reqs": sorted(reqs),
                           "index": self.index.to_json(), "installer": self.installer.name,
                           **({"parity": parity} if parity else {})}, sort_keys=True)
        return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"

    def _overlay(self, reqs: list[str]) -> TrialEnv:
        final = self.cache_dir / self._key("overlay", reqs)
        extra = list(self.extra_paths)
        if _complete(final):
            _touch(final)
            return TrialEnv("overlay", self.python, final, overlay=reqs, cached=True, extra_paths=extra)
        start = time.perf_counter()
        with _fresh_dir(final) as tmp:
            self.installer.install_target(self.python, tmp, reqs, self.index)
            _mark_done(tmp, {"mode": "overlay", "python": str(self.python), "requirements": reqs})
        return TrialEnv("overlay", self.python, final, overlay=reqs, build_seconds=time.perf_counter() - start,
                        extra_paths=extra)

    def _venv(self, wanted: Mapping[str, str | None], why: str) -> TrialEnv:
        reqs = self.venv_requirements(wanted)
        if self.parity is not None:  # the running parity replaces whatever the lock says
            reqs = [r for r in reqs if _requirement_name(r) != "parity"]
        final = self.cache_dir / self._key("venv", reqs)
        changed = self.overlay_requirements(wanted)
        if _complete(final):
            _touch(final)
            return TrialEnv("venv", final / "bin" / "python", final, overlay=changed, why=why, cached=True)
        start = time.perf_counter()
        with _fresh_dir(final) as tmp:
            venv_python = self.installer.create_venv(self.python, tmp)
            if reqs:
                self.installer.install_venv(venv_python, reqs, self.index)
            if self.parity is not None:
                self.installer.install_venv(venv_python, [str(self.parity.wheel)], IndexOptions())
            _mark_done(tmp, {"mode": "venv", "python": str(self.python), "requirements": reqs,
                             "parity": self.parity.digest if self.parity is not None else None})
        return TrialEnv("venv", final / "bin" / "python", final, overlay=changed, why=why,
                        build_seconds=time.perf_counter() - start)


def _complete(path: Path) -> bool:
    return (path / _DONE).is_file()


def _touch(path: Path) -> None:
    """Mark a cache entry as just used (the cache's LRU pruning reads the marker's mtime)."""
    with contextlib.suppress(OSError):
        os.utime(path / _DONE)


def _requirement_name(line: str) -> str | None:
    from packaging.requirements import InvalidRequirement, Requirement

    from parity.env.snapshots import canonical_name

    try:
        return canonical_name(Requirement(line).name)
    except InvalidRequirement:
        return None


def _fresh_dir(final: Path) -> Any:
    """atomic_dir for a cache entry: an incomplete leftover (no marker) is replaced;
    a failed build leaves nothing behind and is reported as InstallError."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not _complete(final):
        shutil.rmtree(final, ignore_errors=True)
    return atomic_dir(final, overwrite=True)


def _mark_done(path: Path, info: dict[str, Any]) -> None:
    from parity.bisection.cache import du

    info = {**info, "size_bytes": du(path)}  # read by the cache's size accounting
    atomic_write_text(path / _DONE, json.dumps(info, indent=2, sort_keys=True) + "\n")


# -- releases between two versions (for --narrow) -----------------------------------------

_DIST_FILE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[0-9][^-]*?)(?:-[^-]+){2,3}\.whl$"
                        r"|^(?P<sname>[A-Za-z0-9][A-Za-z0-9._-]*?)-(?P<sversion>[0-9][^-]*?)\.(?:tar\.gz|zip)$")


def releases_in_folders(name: str, folders: Sequence[str]) -> set[str]:
    """Versions of ``name`` found as wheel or sdist file names in find-links folders."""
    from parity.env.snapshots import canonical_name

    want = canonical_name(name)
    found: set[str] = set()
    for folder in folders:
        if "://" in folder or not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            m = _DIST_FILE.match(entry.name)
            if not m:
                continue
            dist = m.group("name") or m.group("sname")
            version = m.group("version") or m.group("sversion")
            if canonical_name(dist) == want:
                found.add(version)
    return found


def releases_from_index(python: Path, name: str, index: IndexOptions) -> set[str]:
    """Versions the user's index offers (``pip index versions``: yanked and
    pre-releases already left out). Empty when pip or the index is unavailable."""
    if index.no_index:
        return set()
    pip = [str(python), "-m", "pip"] if _has_pip(python) else [sys.executable, "-m", "pip", "--python", str(python)]
    argv = [*pip, "index", "versions", name, "--disable-pip-version-check", *index.args()]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    for line in proc.stdout.splitlines():
        if line.startswith("Available versions:"):
            return {v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()}
    return set()


def releases_between(candidates: set[str], good: str, bad: str) -> list[str]:
    """Final releases strictly between ``good`` and ``bad``, ordered from the good side.

    Pre-releases and dev releases are left out, as are unparsable version strings.
    """
    from packaging.version import InvalidVersion, Version

    g, b = Version(good), Version(bad)
    low, high = min(g, b), max(g, b)
    # Keep the spelling found (file names, index) so the install asks for exactly it.
    kept: dict[Version, str] = {}
    for raw in sorted(candidates):
        try:
            v = Version(raw)
        except InvalidVersion:
            continue
        if v.is_prerelease or v.is_devrelease or not low < v < high:
            continue
        kept.setdefault(v, raw)
    return [kept[v] for v in sorted(kept, reverse=g > b)]
