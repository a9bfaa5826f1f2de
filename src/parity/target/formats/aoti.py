"""AOTInductor ``.pt2`` packages: compiled C++/machine code plus weights.

The only module that touches ``torch._inductor`` (a private, fast-moving API).
Compiling needs a C++ compiler; without one the export stops with that reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from parity.errors import ExportError
from parity.target.formats.base import ArtifactFormat
from parity.target.formats.job import ExportJob, Finding, first_line, quiet_exporter
from parity.target.formats.model_io import META_KEY
from parity.target.formats.torch_export import export_program

#: compilers AOTInductor can drive, in the order we look for them ($CXX first)
_COMPILERS = ("g++", "c++", "clang++")


def find_compiler() -> str | None:
    """Path of the C++ compiler AOTInductor will use, or None when there is none."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else []
    for name in [*candidates, *_COMPILERS]:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_compiler() -> str:
    """The compiler path, or :class:`ExportError` saying why aoti cannot run here."""
    found = find_compiler()
    if found is None:
        raise ExportError("--format aoti needs a C++ compiler and none was found "
                          f"(looked for $CXX, {', '.join(_COMPILERS)})",
                          fix="install g++ (or set CXX), or use --format export for a .pt2 that runs "
                              "with torch alone")
    return found


def aoti_bytes(job: ExportJob) -> tuple[bytes, list[Finding]]:
    """Compile the exported program into an AOTInductor package (bytes) with parity metadata."""
    import torch._inductor

    require_compiler()
    program, findings = export_program(job, tool="torch.export (for AOTInductor)")
    configs = {"aot_inductor.metadata": {META_KEY: job.meta.to_text()}}
    with tempfile.TemporaryDirectory(prefix="parity-aoti-") as tmp:
        path = Path(tmp) / "model.pt2"
        try:
            with quiet_exporter():
                torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                         inductor_configs=configs)
        except Exception as exc:
            raise ExportError(f"AOTInductor could not compile the model: {first_line(exc)}",
                              fix="use --format export (no compilation) or --format onnx") from exc
        return path.read_bytes(), findings


def is_aoti_package(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a ``.pt2`` zip holding compiled AOTInductor code rather than a
    bare program: ``<archive>/data/aotinductor/...``. Never raises (not a zip: False).

    Only the folder position counts: a torch.export archive saved as ``aotinductor.pt2``
    has ``aotinductor`` in every name, under its top folder.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.split("/")[1:3] == ["data", "aotinductor"] for name in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_aoti(path: str) -> tuple[Any, str]:
    """(callable taking positional tensors, stored metadata text) of an AOTInductor package."""
    import torch._inductor

    runner = torch._inductor.aoti_load_package(path)
    meta = runner.get_metadata().get(META_KEY, "")
    return runner, meta


FORMAT = ArtifactFormat(name="aoti", suffixes=(".pt2",), title="AOTInductor", note="needs a C++ compiler",
                        load=load_aoti, export=aoti_bytes, recognise=is_aoti_package,
                        require=require_compiler, tolerance_scale=10.0)
