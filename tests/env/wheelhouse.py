"""Tiny real wheels built in a test, for pip runs that must not touch any index.

A wheel is a zip with a ``.dist-info`` folder (METADATA, WHEEL, RECORD); pip installs
these with ``--no-index --find-links DIR`` in a second. ``make_simple_index`` lays the
same files out as a PEP 503 "simple" index on disk (``file://`` URL) so that a release
can be marked yanked (PEP 592), which a find-links folder cannot express.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import canonicalize_name


def make_wheel(folder: Path, name: str, version: str, requires: Iterable[str] = ()) -> Path:
    """Write ``name-version-py3-none-any.whl`` (one module) into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: parity-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},{_record_hash(text)},{len(text.encode())}\n" for path, text in files.items()
    )
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return path


def _record_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_simple_index(
    root: Path, wheels: Iterable[Path], yanked: Mapping[str, str] | None = None
) -> str:
    """A PEP 503 index under ``root`` serving ``wheels``; ``yanked`` maps a wheel file
    name to its yank reason. Returns the index URL (``file://.../simple/``)."""
    by_project: dict[str, list[Path]] = {}
    for wheel in wheels:
        by_project.setdefault(canonicalize_name(wheel.name.split("-")[0]), []).append(wheel)
    for project, files in by_project.items():
        page = root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        links = []
        for wheel in files:
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            reason = (yanked or {}).get(wheel.name)
            attr = f' data-yanked="{reason}"' if reason is not None else ""
            links.append(
                f'<a href="{wheel.resolve().as_uri()}#sha256={sha}"{attr}>{wheel.name}</a><br/>'
            )
        (page / "index.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return (root / "simple").resolve().as_uri() + "/"
