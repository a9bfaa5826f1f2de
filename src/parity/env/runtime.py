"""Runtime state of the running interpreter: what torch and the BLAS libraries really do.

Unlike :mod:`parity.env._collect` this imports torch (and numpy when installed, so that
the BLAS it bundles is loaded and visible), so it is only run when asked
(``parity snapshot --runtime``, records). Like ``_collect`` it must stay importable by a
bare Python 3.7+ with no parity installed: ``--python PATH --runtime`` runs it there.
Every probe is guarded, so an older or partial torch yields ``None`` for what it lacks
instead of failing the snapshot.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

_BUILD_SETTING = re.compile(r"(\w+)=(.*?)(?=, \w+=|,?\s*$)")


def collect_runtime() -> dict:
    """``{"torch": {...} | None, "threadpool": {...}, "numpy": ...}``.

    ``torch`` is None with ``torch_error`` when torch cannot be imported; ``threadpool``
    has one entry per loaded BLAS/OpenMP library (threadpoolctl), keyed
    ``"<user_api>:<internal_api>:<owner>/<prefix>"`` (:func:`threadpool_entries`), or
    holds ``"error"`` when threadpoolctl is missing.
    """
    out: dict = {"torch": None, "torch_error": None}
    with warnings.catch_warnings():
        # Reading legacy flags (allow_tf32...) warns on new torch; reading is harmless.
        warnings.simplefilter("ignore")
        try:
            import torch
        except Exception as exc:  # torch missing or broken: a fact about this env
            out["torch_error"] = f"{type(exc).__name__}: {exc}"
        else:
            out["torch"] = _torch_state(torch)
        out["numpy"] = _numpy_version()
        out["threadpool"] = _threadpool()
    return out


def _safe(fn, default=None):
    try:
        return fn()
    except Exception:  # a probe this torch does not support
        return default


def _torch_state(torch) -> dict:
    cuda = torch.backends.cuda
    cudnn = torch.backends.cudnn
    config = _safe(torch.__config__.show, "") or ""
    state = {
        "version": str(torch.__version__),
        "build": parse_build_settings(config),
        "build_components": _build_components(config),
        "cpu_capability": _safe(torch.backends.cpu.get_cpu_capability),
        "mkl_available": _safe(torch.backends.mkl.is_available),
        "mkldnn_available": _safe(torch.backends.mkldnn.is_available),
        "openmp_available": _safe(torch.backends.openmp.is_available),
        "parallel_backend": _parallel_backend(_safe(torch.__config__.parallel_info, "") or ""),
        "num_threads": _safe(torch.get_num_threads),
        "num_interop_threads": _safe(torch.get_num_interop_threads),
        "deterministic_algorithms": _safe(torch.are_deterministic_algorithms_enabled),
        "deterministic_warn_only": _safe(torch.is_deterministic_algorithms_warn_only_enabled),
        "float32_matmul_precision": _safe(torch.get_float32_matmul_precision),
        "cuda_matmul_allow_tf32": _safe(lambda: bool(cuda.matmul.allow_tf32)),
        "cuda_matmul_allow_fp16_reduced_precision": _safe(lambda: bool(cuda.matmul.allow_fp16_reduced_precision_reduction)),
        "cuda_matmul_allow_bf16_reduced_precision": _safe(lambda: bool(cuda.matmul.allow_bf16_reduced_precision_reduction)),
        "cudnn_allow_tf32": _safe(lambda: bool(cudnn.allow_tf32)),
        "cudnn_benchmark": _safe(lambda: bool(cudnn.benchmark)),
        "cudnn_deterministic": _safe(lambda: bool(cudnn.deterministic)),
        "cudnn_enabled": _safe(lambda: bool(cudnn.enabled)),
        "cudnn_version": _safe(cudnn.version),
        "grad_enabled": _safe(torch.is_grad_enabled),
        "default_dtype": _safe(lambda: str(torch.get_default_dtype())),
        "autocast": _autocast(torch),
        "cuda_available": _safe(torch.cuda.is_available, False),
        "mps_available": _safe(lambda: bool(torch.backends.mps.is_available()), False),
        "cuda_devices": _cuda_devices(torch),
    }
    return state


def parse_build_settings(config: str) -> dict:
    """``Build settings: BLAS_INFO=mkl, USE_CUDA=0, ...`` -> ``{"blas_info": "mkl", ...}``."""
    for line in config.splitlines():
        line = line.strip()
        if line.startswith("- Build settings:"):
            body = line[len("- Build settings:"):].strip()
            return {k.lower(): v.strip() for k, v in _BUILD_SETTING.findall(body)}
    return {}


def _build_components(config: str) -> list:
    """The ``- ...`` lines of torch's build config (compiler, MKL, oneDNN, OpenMP...)."""
    lines = []
    for line in config.splitlines():
        line = line.strip()
        if line.startswith("- ") and not line.startswith("- Build settings:"):
            lines.append(line[2:])
    return lines


def _parallel_backend(info: str):
    m = re.search(r"ATen parallel backend:\s*(.+)", info)
    return m.group(1).strip() if m else None


def _autocast(torch) -> dict:
    out = {}
    for device in ("cpu", "cuda"):
        enabled = _safe(lambda d=device: bool(torch.is_autocast_enabled(d)))
        dtype = _safe(lambda d=device: str(torch.get_autocast_dtype(d)))
        out[device] = {"enabled": enabled, "dtype": dtype}
    return out


def _cuda_devices(torch) -> list:
    if not _safe(torch.cuda.is_available, False):
        return []
    devices = []
    for i in range(_safe(torch.cuda.device_count, 0) or 0):
        props = _safe(lambda i=i: torch.cuda.get_device_properties(i))
        if props is not None:
            devices.append({"name": props.name, "capability": f"{props.major}.{props.minor}",
                            "memory_total_bytes": int(props.total_memory)})
    return devices


def _numpy_version():
    try:
        import numpy
    except Exception:  # numpy is optional in the measured environment
        return None
    return str(numpy.__version__)


def _threadpool() -> dict:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"error": "threadpoolctl is not installed in this interpreter"}
    roots = [p for p in sys.path if p and os.path.isdir(p)]
    prefixes = [getattr(sys, "prefix", ""), getattr(sys, "base_prefix", "")]
    return threadpool_entries(_safe(threadpool_info, []) or [], roots, prefixes)


def threadpool_entries(libs: list, site_dirs: list, prefixes: list) -> dict:
    """threadpoolctl's libraries keyed ``"<user_api>:<internal_api>:<owner>/<prefix>"``,
    sorted by key.

    ``owner`` is the package folder that ships the library (``numpy`` for
    ``site-packages/numpy.libs/libscipy_openblas64_-….so``, ``scipy`` for ``scipy.libs``,
    ``torch`` for ``torch/lib/libgomp.so.1``), ``env`` for a library of the interpreter's
    prefix (conda), ``system`` otherwise (see :func:`library_owner`). numpy and scipy
    both load an OpenBLAS whose prefix is ``libscipy_openblas``: keyed by prefix alone
    they shared one key, and whichever was loaded last won. Two libraries that still
    share a key (same owner, same prefix) get ``#2``, ``#3`` in the order of their paths,
    never in load order, so the keys do not depend on import order.
    """
    rows = []
    for lib in libs:
        if not isinstance(lib, dict):
            continue
        owner = library_owner(lib.get("filepath"), site_dirs, prefixes)
        key = f"{lib.get('user_api')}:{lib.get('internal_api')}:{owner}/{lib.get('prefix')}"
        rows.append((key, str(lib.get("filepath") or ""), lib))
    out: dict = {}
    for key, _, lib in sorted(rows, key=lambda row: (row[0], row[1])):
        unique, n = key, 1
        while unique in out:
            n += 1
            unique = f"{key}#{n}"
        out[unique] = {name: lib.get(name) for name in _THREADPOOL_FIELDS}
    return out


_THREADPOOL_FIELDS = ("user_api", "internal_api", "version", "num_threads", "threading_layer",
                      "architecture", "filepath")
#: Folder suffixes wheels ship bundled libraries in (auditwheel ``numpy.libs``, delocate ``.dylibs``).
_LIB_FOLDER_SUFFIXES = (".libs", ".dylibs")


def library_owner(filepath, site_dirs: list, prefixes: list) -> str:
    """Who ships a shared library: the top-level folder under the ``sys.path`` entry that
    holds it (``numpy.libs`` -> ``numpy``), ``env`` under the interpreter's prefix,
    ``system`` anywhere else or when the path is unknown."""
    if not filepath:
        return "system"
    path = os.path.normcase(os.path.abspath(str(filepath)))
    best = None
    for root in site_dirs:
        root = os.path.normcase(os.path.abspath(str(root)))
        if path.startswith(root.rstrip(os.sep) + os.sep) and (best is None or len(root) > len(best)):
            best = root
    if best is not None:
        top = os.path.relpath(path, best).split(os.sep)[0]
        for suffix in _LIB_FOLDER_SUFFIXES:
            if top.endswith(suffix) and len(top) > len(suffix):
                top = top[: -len(suffix)]
        if top and top != os.path.basename(path):
            return top
    for prefix in prefixes:
        if prefix and path.startswith(os.path.normcase(os.path.abspath(prefix)).rstrip(os.sep) + os.sep):
            return "env"
    return "system"
