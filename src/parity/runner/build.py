"""Build the C++ runner (``runner.cpp``) against the libtorch inside the installed torch wheel.

The wheel ships libtorch's headers (``torch/include``) and libraries (``torch/lib``), so
no separate libtorch download is needed: the runner is compiled on first use with the
system C++ compiler, links ``libtorch``, ``libtorch_cpu`` and ``libc10`` (never
``libtorch_python``: the runner has no Python interpreter), uses the wheel's C++ ABI
(``torch._C._GLIBCXX_USE_CXX11_ABI``) and finds the libraries through an rpath.

The executable is cached in ``$PARITY_CACHE_DIR`` (default: parity's cache folder) under
``runner/``, named by the torch version, ABI, flags and source hash. It is
compiled into a temporary file and renamed, under a lock file, so concurrent first uses
compile it once and never run a half-written one. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from parity._io import cache_root
from parity.errors import ParityError
from parity.progress import ProgressEvent, ProgressFn, report

SOURCE = Path(__file__).with_name("runner.cpp")
#: compilers tried in this order after ``$CXX``
COMPILERS = ("g++", "c++", "clang++")
FLAGS = ("-O2", "-std=c++17", "-w", "-fPIC")
#: libraries linked: libtorch's C++ core only (no libtorch_python, no libpython)
LIBRARIES = ("torch", "torch_cpu", "c10")
COMPILE_TIMEOUT_S = 900


class RunnerError(ParityError):
    """The C++ runner could not be built or could not run an artifact (exit 2)."""


@dataclass(frozen=True)
class Libtorch:
    """Where the wheel's libtorch lives and how it was built."""

    root: Path
    version: str
    cxx11_abi: bool

    @property
    def include_dirs(self) -> tuple[Path, Path]:
        return self.root / "include", self.root / "include" / "torch" / "csrc" / "api" / "include"

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"


def libtorch() -> Libtorch:
    """The libtorch of the torch installed here; :class:`RunnerError` when it lacks headers."""
    import torch

    root = Path(torch.__file__).resolve().parent
    found = Libtorch(root, str(torch.__version__), bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True)))
    header = found.include_dirs[0] / "torch" / "script.h"
    if not header.is_file():
        raise RunnerError(f"the torch wheel at {root} has no C++ headers ({header} is missing)",
                          fix="install a torch wheel from the official index (they ship torch/include)")
    return found


def find_compiler() -> list[str]:
    """The C++ compiler command: ``$CXX`` when set (it must exist), else g++, c++, clang++."""
    explicit = os.environ.get("CXX", "").strip()
    if explicit:
        words = shlex.split(explicit)
        found = shutil.which(words[0]) if words else None
        if not found:
            raise RunnerError(f"the C++ runner needs a C++ compiler: CXX={explicit!r} is not a program here",
                              fix="set CXX to an installed C++ compiler (e.g. g++) or unset it")
        return [found, *words[1:]]
    for name in COMPILERS:
        found = shutil.which(name)
        if found:
            return [found]
    raise RunnerError("the C++ runner needs a C++ compiler and none was found "
                      f"(looked for $CXX, {', '.join(COMPILERS)} on PATH)",
                      fix="install g++ (e.g. apt-get install g++) or set CXX; or run the artifact in Python "
                          "(leave out --runner cpp / --check-cpp)")


def cache_dir() -> Path:
    """Where built runners are kept: ``$PARITY_CACHE_DIR/runner``, else parity's cache folder."""
    explicit = os.environ.get("PARITY_CACHE_DIR")
    return (Path(explicit) if explicit else cache_root()) / "runner"


def command(compiler: list[str], lib: Libtorch, out: str | os.PathLike[str]) -> list[str]:
    """The compile-and-link command line for ``runner.cpp``."""
    includes = [f"-I{d}" for d in lib.include_dirs]
    libs = [f"-l{name}" for name in LIBRARIES]
    return [*compiler, *FLAGS, f"-D_GLIBCXX_USE_CXX11_ABI={int(lib.cxx11_abi)}", *includes, str(SOURCE),
            "-o", str(out), f"-L{lib.lib_dir}", "-Wl,--no-as-needed", *libs, "-Wl,--as-needed",
            f"-Wl,-rpath,{lib.lib_dir}", "-pthread"]


def build_key(lib: Libtorch) -> str:
    """Hash of what the executable depends on: the torch it links (version, ABI, place),
    the source and flags, the platform. Not the compiler: a runner built once keeps
    working on a machine that has none (a serving image)."""
    parts = [SOURCE.read_bytes(), " ".join(FLAGS).encode(), lib.version.encode(), str(lib.cxx11_abi).encode(),
             str(lib.root).encode(), platform.machine().encode(), sys.platform.encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]


def executable(progress: ProgressFn | None = None) -> Path:
    """Path of the built runner, compiling it first when this torch has none cached.

    Raises :class:`RunnerError` (exit 2) with the reason and the fix when it must be
    built and there is no compiler, the wheel has no headers, or the compile fails.
    """
    if not sys.platform.startswith("linux"):
        raise RunnerError(f"the C++ runner is built on Linux only (this is {sys.platform})",
                          fix="run the artifact in Python (leave out --runner cpp / --check-cpp)")
    lib = libtorch()
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise RunnerError(f"cannot create the runner cache {directory} ({exc.strerror})",
                          fix="set PARITY_CACHE_DIR to a writable folder") from None
    target = directory / f"parity-runner-{build_key(lib)}"
    if _usable(target):
        return target
    compiler = find_compiler()  # only a build needs one
    with _lock(directory / f"{target.name}.lock"):
        if not _usable(target):  # another process may have built it while we waited
            report(progress, ProgressEvent("build C++ runner", 0, 1, "build",
                                           notice=f"compiling parity's C++ runner against torch {lib.version} "
                                                  "(once per torch version, ~1 min)"))
            _compile(compiler, lib, directory, target)
            report(progress, ProgressEvent("build C++ runner", 1, 1, "build"))
    return target


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


class _lock:
    """An exclusive ``flock`` on ``path`` (Linux), held for the ``with`` block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _lock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _compile(compiler: list[str], lib: Libtorch, directory: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".parity-runner-", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        try:
            done = subprocess.run(command(compiler, lib, tmp), capture_output=True, text=True,
                                  timeout=COMPILE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RunnerError(f"the C++ compiler {compiler[0]} did not run ({exc})",
                              fix="check the compiler (or set CXX to another one)") from None
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
            last = (errors or done.stderr.strip().splitlines() or ["no message"])[0][:300]
            raise RunnerError(f"the C++ compiler {compiler[0]} could not build parity's runner against "
                              f"torch {lib.version}: {last}",
                              fix="install a compiler with C++17 support (g++ >= 9), or set CXX to one")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
