"""Tiny wheels and snapshots for the bisect tests, written directly (no build tool, no network).

A wheel is a zip with the package files and a ``.dist-info`` folder holding METADATA,
WHEEL and RECORD (sha256 of every file); that is all uv and pip need to install it
from a ``--find-links`` folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

from parity.bisection.trials import find_uv


def build_wheel(folder: Path, name: str, version: str, body: str = "", tag: str = "py3-none-any") -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into ``folder``: one module named like the
    package (dashes -> underscores) whose source is ``body`` plus ``__version__``."""
    dist = name.replace("-", "_")
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n{body}",
        f"{dist}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}-{version}.dist-info/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: parity-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ),
    }
    record_name = f"{dist}-{version}.dist-info/RECORD"
    record = [f"{path},{_hash(text.encode())},{len(text.encode())}" for path, text in files.items()]
    files[record_name] = "\n".join([*record, f"{record_name},,"]) + "\n"
    path = folder / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, text in files.items():
            zf.writestr(arcname, text)
    return path


def _hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def write_snapshot(path: Path, packages: Mapping[str, str], python: str | None = None,
                   python_version: str | None = None) -> Path:
    """A minimal ``parity.snapshot/1`` file listing ``packages`` (name -> version)."""
    version = python_version or ".".join(map(str, sys.version_info[:3]))
    snap = {
        "schema": "parity.snapshot/1",
        "meta": {"created": "2026-01-01T00:00:00Z"},
        "python": {"version": version, "implementation": "CPython", "executable": python or sys.executable},
        "platform": {"system": "Linux"},
        "cpu": {},
        "packages": {
            name: {"name": name, "version": v, "local": v.partition("+")[2] or None} for name, v in packages.items()
        },
        "env_vars": {},
    }
    path.write_text(json.dumps(snap, indent=2), encoding="utf-8")
    return path


#: Oracle used by the tests: ``python oracle.py a+b c`` exits 1 when every module of
#: some group (here a and b together, or c) has BROKEN = True, else 0.
ORACLE = """\
import importlib, sys
for group in sys.argv[1:]:
    mods = [importlib.import_module(m.replace('-', '_')) for m in group.split('+')]
    if all(getattr(m, 'BROKEN', False) for m in mods):
        sys.exit(1)
sys.exit(0)
"""


def make_good_venv(root: Path, wheels: Path, packages: dict[str, str]) -> Path:
    """A real venv on this interpreter with ``packages`` installed from ``wheels``;
    returns its python (the good environment's interpreter)."""
    uv = find_uv()
    assert uv, "uv is part of the test environment"
    venv = root / "good-venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    reqs = [f"{n}=={v}" for n, v in packages.items()]
    if reqs:
        subprocess.run([uv, "pip", "install", "--quiet", "--no-deps", "--python", str(python), "--no-index",
                        "--find-links", str(wheels), *reqs], check=True)
    return python


def wheel_of_installed(folder: Path, dist_name: str) -> Path:
    """A wheel of an installed pure-Python distribution (its RECORD's files), so tests can
    install it into a venv from a --find-links folder without any index."""
    from importlib.metadata import distribution

    dist = distribution(dist_name)
    name, version = dist.metadata["Name"].replace("-", "_"), dist.version
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in dist.files or []:
            rel = str(file)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "RECORD", "INSTALLER")):
                continue
            zf.writestr(rel, Path(str(file.locate())).read_bytes())
        info = f"{name}-{version}.dist-info"
        zf.writestr(f"{info}/RECORD", "")
    return path
