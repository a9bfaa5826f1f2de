"""The running parity as a wheel, so ``parity verify``/``bench`` oracles run in every trial.

A full-venv trial is installed from the good side's lock, which never holds parity when
parity is an editable install (a working tree is not lockable), and an overlay trial
runs the good side's interpreter, which may not have parity at all. Either way the
oracle would fail with "No module named parity". So bisect packs the parity that is
running (editable or not: the files of the imported package, no build tool, no index)
into a pure-Python wheel once, caches it by content, installs it with ``--no-deps``
into every full venv, and puts its unpacked copy on ``PYTHONPATH`` for base and
overlay trials whose interpreter does not already import this same parity.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from parity._io import atomic_dir, atomic_write_text
from parity._version import __version__

#: Written last into a cached wheel folder: its presence means complete.
_DONE = ".parity-self.txt"
_TAG = "py3-none-any"


@dataclass(frozen=True)
class ParityWheel:
    """``wheel``: the file to install; ``site``: the same files unpacked (for PYTHONPATH);
    ``digest``: sha256 of the package files (part of every venv trial's cache key)."""

    wheel: Path
    site: Path
    digest: str


def package_dir() -> Path:
    """The folder of the running ``parity`` package (this file's parent's parent: asking
    ``parity.__file__`` would make bisection import the package front that imports it)."""
    return Path(__file__).resolve().parent.parent


def package_files() -> dict[str, Path]:
    """Archive name -> file, for every file of the running package (no bytecode)."""
    root = package_dir()
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo"):
            out[f"parity/{rel.as_posix()}"] = path
    return out


def parity_wheel(cache_dir: Path) -> ParityWheel:
    """The cached wheel of the running parity under ``cache_dir``, built when absent."""
    files = package_files()
    h = hashlib.sha256()
    for name, path in files.items():
        h.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    digest = h.hexdigest()
    folder = cache_dir / "parity-self" / f"{__version__}-{digest[:16]}"
    found = ParityWheel(folder / f"parity-{__version__}-{_TAG}.whl", folder / "site", digest)
    if (folder / _DONE).is_file():
        os.utime(folder / _DONE)  # recently used: kept by the cache's LRU pruning
        return found
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder, overwrite=True) as tmp:
        wheel = tmp / found.wheel.name
        _write_wheel(wheel, files)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp / "site")
        atomic_write_text(tmp / _DONE, f"parity {__version__} from {package_dir()}\nsha256 {digest}\n")
    return found


def _write_wheel(path: Path, files: dict[str, Path]) -> None:
    info = f"parity-{__version__}.dist-info"
    meta = {
        f"{info}/METADATA": _metadata(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: parity bisect\nRoot-Is-Purelib: true\nTag: {_TAG}\n",
        f"{info}/entry_points.txt": "[console_scripts]\nparity = parity.cli.main:run\n",
    }
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, src in files.items():
            data = src.read_bytes()
            zf.writestr(name, data)
            record.append(f"{name},{_record_hash(data)},{len(data)}")
        for name, text in meta.items():
            zf.writestr(name, text)
            record.append(f"{name},{_record_hash(text.encode())},{len(text.encode())}")
        zf.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")


def _metadata() -> str:
    """Name, version and the installed distribution's requirements (informational:
    the wheel is installed with --no-deps)."""
    lines = ["Metadata-Version: 2.1", "Name: parity", f"Version: {__version__}"]
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        lines += [f"Requires-Dist: {r}" for r in (distribution("parity").requires or [])]
    except (ImportError, PackageNotFoundError):
        pass
    return "\n".join(lines) + "\n"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def imports_this_parity(python: Path) -> bool:
    """True when ``python`` (as a trial would run it) imports the running parity's files."""
    probe = "import os, parity; print(os.path.realpath(os.path.dirname(parity.__file__)))"
    try:
        proc = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == str(package_dir())
