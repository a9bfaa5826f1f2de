"""Stdlib-only collectors of the environment snapshot.

This file must stay importable by itself with nothing but the standard library of
Python 3.7+: ``parity snapshot --python PATH`` sends its source to another interpreter
(which has no parity installed) and runs :func:`collect` there. So: no parity imports,
no third-party imports at module level, no syntax or stdlib API newer than 3.7.

It reads files instead of importing packages (dist-info folders, ``torch/version.py``,
``/proc/cpuinfo``) because importing is slow and may disturb the environment measured.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time

SCHEMA = "parity.snapshot/1"

#: CPU flags that change which kernels run (x86 names from /proc/cpuinfo, Arm "Features").
_ISA_FLAG = re.compile(
    r"^(sse4_1|sse4_2|ssse3|avx|avx2|fma|f16c|bmi2|avx512.*|amx.*|avx_vnni.*|avx_ifma|avx_ne_convert"
    r"|vnni|asimd.*|neon|fphp|sve.*|sme(?!p$).*|bf16|i8mm|dotprod|asimddp|asimdhp)$"
)

#: Environment variables that can change numerics or speed (prefixes and exact names): the
#: only ones ever recorded. The table in docs/architecture.md ("Environment variables
#: recorded") lists them with why; keep the two in step.
_ENV_PREFIXES = (
    "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_", "BLIS_", "VECLIB_", "ONEDNN_", "DNNL_",
    "ATEN_", "CUDA_", "CUBLAS_", "CUBLASLT_", "CUDNN_", "NCCL_", "NVIDIA_", "HIP_", "ROCR_", "HSA_",
    "MIOPEN_", "ROCBLAS_", "PYTORCH_", "TORCH", "TRITON_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_",
    "TOKENIZERS_", "ORT_", "OPENCV_",
)
_ENV_NAMES = ("LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHASHSEED", "MALLOC_ARENA_MAX", "MALLOC_CONF", "CC", "CXX")
#: A name that may hold a credential is dropped whatever its prefix: one of these words
#: anywhere in it (TORCH_HUB_PASS, PYTORCH_PASSPHRASE, CUDA_ACCESS, HF_TOKEN)...
_SECRET_WORDS = ("TOKEN", "SECRET", "PASS", "PWD", "KEY", "ACCESS", "CREDENTIAL", "AUTH", "COOKIE",
                 "SESSION", "PRIVATE", "SIGNATURE", "LOGIN", "CERT")
#: ...or one of these as a whole word between underscores (HF_HUB_PAT; PATH and COMPAT are fine).
_SECRET_PARTS = frozenset({"PAT", "PATS", "PW", "SIG", "CRED", "CREDS", "SAS", "JWT", "BEARER"})
#: Words that hold one of the above but name no credential (TOKENIZERS_PARALLELISM).
_NOT_SECRET_PARTS = frozenset({"TOKENIZERS", "TOKENIZER"})
#: Cache and home folders of the HF/torch stacks: machine-local paths, not numerics.
_LOCAL_PATH_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "TOKENIZERS_")
_LOCAL_PATH_NAME = re.compile(r"_(HOME|CACHE|CACHE_DIR|CACHE_PATH|DIR|PATH)$")

_CANON = re.compile(r"[-_.]+")
_LOCAL_CUDA = re.compile(r"^cu(\d+?)(\d)$")
_LOCAL_ROCM = re.compile(r"^rocm(\d[\d.]*)$")


def collect() -> dict:
    """The snapshot of the running interpreter, without ``runtime`` (see runtime.py).

    Volatile facts (time, PID, host, how long collection took) go under ``"meta"``;
    ``parity_version`` there is filled in by the caller, which knows it.
    """
    started = time.perf_counter()
    paths = _site_paths()
    packages = collect_packages(paths)
    snap = {
        "schema": SCHEMA,
        "meta": {},
        "python": collect_python(),
        "platform": collect_platform(),
        "cpu": collect_cpu(),
        "packages": packages,
        "torch": collect_torch(paths, packages),
        "nvidia_wheels": nvidia_wheels(packages),
        "gpu": collect_gpu(),
        "env_vars": collect_env_vars(os.environ),
        "package_sources": collect_package_sources(os.environ),
        "runtime": None,
    }
    snap["meta"] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parity_version": None,
        "collect_seconds": round(time.perf_counter() - started, 6),
        "pid": os.getpid(),
        "hostname": platform.node(),
        "sys_path": paths,
    }
    return snap


# --- packages ------------------------------------------------------------------------


def _site_paths() -> list:
    """Directories on sys.path that exist, in import order (first one wins a name).

    A directory inside a site-packages directory on sys.path is a package's private
    vendor folder (``import ray`` appends ``site-packages/ray/thirdparty_files``), not a
    place packages are installed: a fresh interpreter of the same environment does not
    have it, so it is left out, and a snapshot does not depend on what was imported."""
    seen, out = set(), []
    for entry in sys.path:
        path = os.path.abspath(entry or ".")
        if path not in seen and os.path.isdir(path):
            seen.add(path)
            out.append(path)
    sites = [p for p in out if os.path.basename(p) in ("site-packages", "dist-packages")]
    return [p for p in out if not any(p.startswith(site + os.sep) for site in sites)]


def canonical_name(name: str) -> str:
    """PEP 503 normalised name."""
    return _CANON.sub("-", name).lower()


def collect_packages(paths: list) -> dict:
    """Every installed distribution, keyed by canonical name, found by scanning
    ``*.dist-info`` / ``*.egg-info`` entries directly (much faster than
    importlib.metadata). Like the import system, the first directory on sys.path wins."""
    found: dict = {}
    for path in paths:
        try:
            names = os.listdir(path)
        except OSError:
            continue
        for entry in sorted(names):
            if entry.endswith(".dist-info"):
                dist = _read_dist_info(os.path.join(path, entry))
            elif entry.endswith(".egg-info"):
                dist = _read_egg_info(os.path.join(path, entry))
            else:
                continue
            if dist is not None:
                found.setdefault(canonical_name(dist["name"]), dist)
    return {k: found[k] for k in sorted(found)}


def _read_headers(path: str, wanted: tuple) -> dict:
    """RFC 822 headers (METADATA / PKG-INFO) until all ``wanted`` are seen.

    Name and Version are the 2nd and 3rd lines in practice, so only the first 1 KiB is
    read (more only when needed); METADATA files run to hundreds of KiB. Binary: no
    TextIOWrapper per file.
    """
    out = _parse_headers(_read_bytes(path, 1024) or b"", 1024, wanted)
    if len(out) < len(wanted):
        out = _parse_headers(_read_bytes(path, 1 << 16) or b"", 1 << 16, wanted)
    return out


def _parse_headers(head: bytes, limit: int, wanted: tuple) -> dict:
    out: dict = {}
    lines = head.split(b"\n")
    if len(head) >= limit:
        lines = lines[:-1]  # the read may have cut the last line short
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key in wanted and key not in out:
            out[key] = value.strip()
            if len(out) == len(wanted):
                break
    return out


def _read_bytes(path: str, limit: int = -1):
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def _read_text(path: str):
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def _read_dist_info(folder: str):
    try:
        present = set(os.listdir(folder))  # one syscall instead of a failed open per absent file
    except OSError:
        return None
    headers = _read_headers(os.path.join(folder, "METADATA"), ("Name", "Version")) if "METADATA" in present else {}
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        stem = os.path.basename(folder)[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        if not name or not version:
            return None
    installer = _read_text(os.path.join(folder, "INSTALLER")) if "INSTALLER" in present else None
    direct_url = _read_direct_url(os.path.join(folder, "direct_url.json")) if "direct_url.json" in present else None
    return _dist_entry(name, version, "dist-info", installer.strip() if installer else None,
                       "REQUESTED" in present, direct_url)


def _read_egg_info(entry: str):
    pkg_info = os.path.join(entry, "PKG-INFO") if os.path.isdir(entry) else entry
    headers = _read_headers(pkg_info, ("Name", "Version"))
    if not headers.get("Name") or not headers.get("Version"):
        return None
    return _dist_entry(headers["Name"], headers["Version"], "egg-info", None, None, None)


def _read_direct_url(path: str):
    """PEP 610 ``direct_url.json``, or None when the distribution came from an index."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"url": None, "error": "direct_url.json is not valid JSON"}
    if isinstance(data, dict) and isinstance(data.get("url"), str):
        data["url"] = redact(data["url"])
    return data if isinstance(data, dict) else None


def _dist_entry(name, version, metadata, installer, requested, direct_url) -> dict:
    public, _, local = version.partition("+")
    dir_info = (direct_url or {}).get("dir_info") or {}
    vcs_info = (direct_url or {}).get("vcs_info")
    vcs = None
    if isinstance(vcs_info, dict):
        vcs = {"vcs": vcs_info.get("vcs"), "commit_id": vcs_info.get("commit_id"),
               "requested_revision": vcs_info.get("requested_revision")}
    editable = bool(dir_info.get("editable")) if isinstance(dir_info, dict) else False
    return {
        "name": name,
        "version": version,
        "public_version": public,
        "local": local or None,
        "installer": installer,
        "requested": requested,
        "direct_url": direct_url,
        "editable": editable,
        "editable_location": (direct_url or {}).get("url") if editable else None,
        "vcs": vcs,
        "variant": variant_of(local) if local else None,
        "metadata": metadata,
    }


def variant_of(local: str) -> dict:
    """What a local version label says about the wheel: ``cu121`` -> CUDA 12.1 build.

    A local label is never on the default index, so such a wheel came from another
    index or a file (PyTorch's per-variant indexes are the common case).
    """
    cuda = _LOCAL_CUDA.match(local)
    rocm = _LOCAL_ROCM.match(local)
    if local == "cpu" or local.startswith("cpu."):
        kind, detail = "cpu", None
    elif cuda:
        kind, detail = "cuda", cuda.group(1) + "." + cuda.group(2)
    elif rocm:
        kind, detail = "rocm", rocm.group(1)
    elif local.startswith("xpu"):
        kind, detail = "xpu", None
    else:
        kind, detail = "other", None
    return {
        "label": local,
        "kind": kind,
        "detail": detail,
        "likely_source": f"a non-default index or a local file (the +{local} label is never on the default index)",
    }


def nvidia_wheels(packages: dict) -> dict:
    """The CUDA libraries shipped as ``nvidia-*`` wheels (cuBLAS, cuDNN...), name -> version;
    nvidia-ml-py is a monitoring binding, not one of them."""
    return {k: v["version"] for k, v in sorted(packages.items())
            if k.startswith("nvidia-") and not k.startswith("nvidia-ml-py")}


# --- torch without importing it ----------------------------------------------------------


def collect_torch(paths: list, packages: dict):
    """Facts from ``torch/version.py`` (read as text, torch is not imported)."""
    for path in paths:
        version_py = os.path.join(path, "torch", "version.py")
        text = _read_text(version_py)
        if text is None:
            continue
        facts = _parse_simple_assignments(text)
        cuda, hip = facts.get("cuda"), facts.get("hip")
        version = facts.get("__version__")
        variant = "cuda" if cuda else "rocm" if hip else "xpu" if facts.get("xpu") else "cpu"
        return {
            "version": version,
            "cuda": cuda,
            "hip": hip,
            "rocm": facts.get("rocm"),
            "xpu": facts.get("xpu"),
            "git_version": facts.get("git_version"),
            "debug": facts.get("debug"),
            "variant": variant,
            "location": os.path.join(path, "torch"),
        }
    return None


_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=\s*(.+?)\s*$")


def _parse_simple_assignments(text: str) -> dict:
    """``name = 'literal'`` lines of a generated file: strings, None, True, False."""
    out: dict = {}
    for line in text.splitlines():
        m = _ASSIGN.match(line)
        if not m:
            continue
        raw = m.group(2)
        if raw in ("None", "True", "False"):
            out[m.group(1)] = {"None": None, "True": True, "False": False}[raw]
        elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            out[m.group(1)] = raw[1:-1]
    return out


# --- interpreter, OS, CPU --------------------------------------------------------------------


def collect_python() -> dict:
    base = getattr(sys, "base_prefix", sys.prefix)
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": base,
        "is_venv": sys.prefix != base,
        "bits": 64 if sys.maxsize > 2**32 else 32,
        "byteorder": sys.byteorder,
    }


def collect_platform() -> dict:
    uname = os.uname() if hasattr(os, "uname") else None
    return {
        "system": platform.system(),
        "release": uname.release if uname else platform.release(),
        "machine": uname.machine if uname else platform.machine(),
        "distro": _distro(),
        "glibc": _glibc(),
    }


def _glibc():
    """``2.36``; os.confstr is instant where platform.libc_ver() reads the whole binary."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    if value and value.startswith("glibc "):
        return value.split(" ", 1)[1]
    return None


def _distro():
    text = _read_text("/etc/os-release") or _read_text("/usr/lib/os-release")
    if text is None:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    if not fields:
        return None
    return {"id": fields.get("ID"), "version_id": fields.get("VERSION_ID"), "pretty_name": fields.get("PRETTY_NAME")}


def collect_cpu() -> dict:
    if sys.platform == "darwin":
        info = _parse_sysctl(_sysctl_text())
    else:
        info = _parse_cpuinfo(_read_text("/proc/cpuinfo") or "")
    affinity = None
    if hasattr(os, "sched_getaffinity"):
        try:
            affinity = len(os.sched_getaffinity(0))
        except OSError:
            affinity = None
    return {
        "model": info["model"] or platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "physical_cores": info["physical_cores"],
        "usable_cores": affinity,
        "cgroup_cpu_quota": _cgroup_cpu_quota(),
        "flags": info["flags"],
    }


def _parse_cpuinfo(text: str) -> dict:
    model = None
    flags: set = set()
    cores: set = set()
    physical_id = "0"
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "cpu model", "Hardware") and model is None:
            model = value
        elif key in ("flags", "Features"):
            flags.update(f for f in value.split() if _ISA_FLAG.match(f))
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    return {"model": model, "flags": sorted(flags), "physical_cores": len(cores) or None}


_SYSCTL_KEYS = ("machdep.cpu.brand_string", "machdep.cpu.features", "machdep.cpu.leaf7_features",
                "hw.physicalcpu", "hw.optional")
#: macOS names -> the Linux spelling used in snapshots, so a Mac and a Linux box compare.
_MAC_FLAG = {"avx1.0": "avx", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "advsimd": "asimd",
             "feat_bf16": "bf16", "feat_i8mm": "i8mm", "feat_dotprod": "asimddp", "feat_fp16": "fphp",
             "feat_sme": "sme", "feat_sme2": "sme2", "neon": "neon", "avx512f": "avx512f"}


def _sysctl_text() -> str:
    """``sysctl`` output for the CPU keys (macOS has no /proc/cpuinfo)."""
    import subprocess  # only here: costs an import on every other platform

    try:
        return subprocess.run(["sysctl", *_SYSCTL_KEYS], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _parse_sysctl(text: str) -> dict:
    """Model, physical cores and ISA flags from ``sysctl`` lines (``key: value``)."""
    model, physical = None, None
    flags: set = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "machdep.cpu.brand_string":
            model = value
        elif key == "hw.physicalcpu" and value.isdigit():
            physical = int(value)
        elif key in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
            flags.update(_MAC_FLAG.get(f.lower(), f.lower()) for f in value.split())
        elif key.startswith("hw.optional.") and value == "1":
            name = key.rsplit(".", 1)[1].lower()
            flags.add(_MAC_FLAG.get(name, name))
    return {"model": model, "flags": sorted(f for f in flags if _ISA_FLAG.match(f)), "physical_cores": physical}


def _cgroup_cpu_quota():
    """CPUs granted by the cgroup v2 quota (``cpu.max``), None when unlimited/unknown."""
    text = _read_text("/sys/fs/cgroup/cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return round(int(parts[0]) / int(parts[1]), 3)
    except (ValueError, ZeroDivisionError):
        return None


# --- GPU -------------------------------------------------------------------------------------


def collect_gpu() -> dict:
    """GPU model, driver and CUDA driver version via nvidia-ml-py when the driver is there.

    No GPU is a fact, not an error: ``{"status": "absent", "reason": ...}``.
    """
    driver_text = _read_text("/proc/driver/nvidia/version")
    has_device = driver_text is not None or os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")
    if not has_device:
        return {"status": "absent", "reason": "no NVIDIA driver or device node on this machine", "source": "filesystem"}
    try:
        return _gpu_from_nvml()
    except ImportError:
        reason = "nvidia-ml-py is not installed in this interpreter: no device details"
    except Exception as exc:  # NVML raises its own error types; any of them means "no details"
        reason = f"NVML failed: {str(exc) or type(exc).__name__}"
    return {"status": "present" if driver_text else "unknown", "reason": reason,
            "driver_version": _driver_from_proc(driver_text), "source": "/proc/driver/nvidia/version"}


def _driver_from_proc(text):
    m = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?([\d.]+)", text or "")
    return m.group(1) if m else None


def _gpu_from_nvml() -> dict:
    import pynvml  # nvidia-ml-py; optional

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            devices.append({
                "name": _as_str(pynvml.nvmlDeviceGetName(handle)),
                "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                "compute_capability": f"{major}.{minor}",
            })
    finally:
        pynvml.nvmlShutdown()
    return {
        "status": "present" if devices else "absent",
        "reason": None if devices else "NVML reports no devices",
        "driver_version": _as_str(driver),
        "cuda_driver_version": f"{cuda // 1000}.{(cuda % 1000) // 10}",
        "count": len(devices),
        "devices": devices,
        "source": "nvml",
    }


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- environment variables -----------------------------------------------------------------


#: variables that parity's own dependencies set on import (threadpoolctl does
#: os.environ.setdefault("KMP_DUPLICATE_LIB_OK", "True")), with that value. Every
#: process parity records or verifies in has them, and children inherit them, so with
#: that value they describe parity, not the user's environment; any other value is kept.
_SET_BY_PARITY_DEPENDENCIES = {"KMP_DUPLICATE_LIB_OK": "True"}


def collect_env_vars(environ) -> dict:
    """Numerics-relevant variables (:func:`env_var_recorded`), each value through
    :func:`redact` (credentials in URLs and anything shaped like a token masked)."""
    out = {}
    for name in sorted(environ):
        if not env_var_recorded(name):
            continue
        if _SET_BY_PARITY_DEPENDENCIES.get(name) == environ[name]:
            continue
        out[name] = redact(environ[name])
    return out


def env_var_recorded(name: str) -> bool:
    """Whether a variable of that name is recorded: on the allow-list (prefixes and names
    that change numerics or speed), no word of a credential in it, and not one of the
    HF/torch cache folders (paths that differ on every machine)."""
    if not (name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES):
        return False
    parts = [part for part in name.upper().split("_") if part not in _NOT_SECRET_PARTS]
    if any(word in "_".join(parts) for word in _SECRET_WORDS) or _SECRET_PARTS.intersection(parts):
        return False
    return not (name.startswith(_LOCAL_PATH_PREFIXES) and _LOCAL_PATH_NAME.search(name))


# --- secrets: masked wherever a value is recorded ----------------------------------------------
#
# Every scan here is linear in the length of the text (str.find and single-class regexes,
# no nested or backtracking quantifiers): values come from the user's environment and
# configuration files, which may be hostile or simply huge.

MASK = "***"
#: Prefixes of well-known credential formats (Hugging Face, GitHub, GitLab, OpenAI/Stripe,
#: Slack, AWS, Google, npm, PyPI, DigitalOcean, Shopify, SendGrid).
_KNOWN_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?:hf_|api_org_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|sk-|sk_live_|sk_test_"
    r"|rk_live_|xox[abposr]-|AKIA|ASIA|AIza|ya29\.|npm_|pypi-|dop_v1_|shpat_|SG\.)"
)
#: A run of characters that may form one token (base64/base62/hex, URL-safe and JWT alphabets).
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_\-.~+/=]+")
_WHITESPACE = re.compile(r"\s")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Query or fragment keys whose value is a credential whatever it looks like.
_SECRET_KEY_WORDS = ("token", "key", "secret", "pass", "pwd", "sig", "auth", "credential", "session",
                     "access", "code", "jwt", "bearer")
_VCS_SCHEMES = ("git+", "hg+", "svn+", "bzr+")
#: A path segment that names a package file is a file name, never a token.
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
#: Longer than this, a single token is masked unread (no legitimate setting is one word this long).
_MAX_TOKEN = 1024


def looks_like_secret(token: str) -> bool:
    """A known credential prefix (``hf_``, ``ghp_``, ``github_pat_``, ``sk-``, ``AKIA``,
    ``xox?-``...), a JWT, or a long random-looking string (20+ letters and digits that
    switch character class often, or 32+ hex digits). UUIDs (GPU ids) are not secrets."""
    if len(token) > _MAX_TOKEN:
        return True
    m = _KNOWN_TOKEN.search(token)
    if m is not None and len(token) - m.start() >= 12:
        return True
    if token.startswith("eyJ") and token.count(".") >= 2 and len(token) >= 24:
        return True
    core = [c for c in _UUID.sub("", token) if c.isalnum() and c.isascii()]
    if len(core) < 20:
        return False
    if len(core) >= 32 and all(c in "0123456789abcdefABCDEF" for c in core):
        return True
    digits = sum(c.isdigit() for c in core)
    if digits < 2 or digits == len(core):
        return False
    switches = sum(1 for x, y in zip(core, core[1:]) if _char_class(x) != _char_class(y))
    return switches * 4 >= len(core)


def _char_class(c: str) -> int:
    return 0 if c.isdigit() else 1 if c.islower() else 2


def redact(value: str) -> str:
    """``value`` with every credential masked as ``***``: URLs as :func:`redact_url` does,
    and, outside URLs, any token :func:`looks_like_secret` (a path segment by segment)."""
    return _redact(value, tokens=True)


def redact_url(value: str) -> str:
    """Mask the credentials of every URL in ``value``: the user-info (split at the last
    ``@`` of the host part, as pip splits it: a password may hold an unencoded ``@``),
    path segments that look like tokens (``https://host/TOKEN/org/simple/``), and query
    values that are secrets by their key (``?token=``) or by their look.

    ``https://user:p@ss@host/x?token=t`` -> ``https://***@host/x?token=***``.
    """
    return _redact(value, tokens=False)


def _redact(value: str, tokens: bool) -> str:
    out, pos = [], 0
    found = value.find("://")
    while found != -1:
        start = found
        while start > pos and value[start - 1] in _SCHEME_CHARS:
            start -= 1
        space = _WHITESPACE.search(value, found)
        end = space.start() if space else len(value)
        out += [_redact_tokens(value[pos:start]) if tokens else value[pos:start],
                _redact_one_url(value[start:found], value[found + 3:end])]
        pos = end
        found = value.find("://", end)
    out.append(_redact_tokens(value[pos:]) if tokens else value[pos:])
    return "".join(out)


def _redact_tokens(text: str) -> str:
    return _TOKEN_RUN.sub(_mask_token, text) if text else text


def _mask_token(match) -> str:
    token = match.group(0)
    if token.startswith(("/", "./", "~/")) and len(token) <= _MAX_TOKEN:
        return "/".join(MASK if looks_like_secret(part) else part for part in token.split("/"))
    return MASK if looks_like_secret(token) else token


def _redact_one_url(scheme: str, rest: str) -> str:
    cut = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i != -1] or [len(rest)])
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    elif ":" in netloc and not netloc.startswith("[") and not netloc.rpartition(":")[2].isdigit():
        # "user:pa/ss@host": a password holding a "/" ends the host part early for a URL
        # parser; everything up to the last "@" before the query is the user-info.
        before_query = _split_first(tail, "?#")[0]
        at = before_query.rfind("@")
        netloc = MASK
        if at != -1:
            host, mark, after = _split_first(tail[at + 1:], "/?#")
            netloc, tail = MASK + "@" + host, mark + after
    path, mark, after = _split_first(tail, "?#")
    ref = ""
    if scheme.lower().startswith(_VCS_SCHEMES) and "@" in path:
        path, ref = path[:path.rfind("@")], path[path.rfind("@"):]  # a branch, tag or commit
    if scheme.lower() != "file":
        path = "/".join(MASK if looks_like_secret(part) and not part.lower().endswith(_ARCHIVES) else part
                        for part in path.split("/"))
    path += ref
    if mark == "?":
        query, hash_mark, fragment = _split_first(after, "#")
        after = "&".join(_redact_param(p) for p in query.split("&")) + hash_mark + fragment
    return scheme + "://" + netloc + path + mark + after


def _split_first(text: str, marks: str) -> tuple:
    """``(before, mark, after)`` at the first character of ``marks`` in ``text``."""
    found = [i for i in (text.find(m) for m in marks) if i != -1]
    if not found:
        return text, "", ""
    i = min(found)
    return text[:i], text[i], text[i + 1:]


def _redact_param(param: str) -> str:
    key, eq, value = param.partition("=")
    if not eq:
        return MASK if looks_like_secret(key) else param
    if any(word in key.lower() for word in _SECRET_KEY_WORDS) or looks_like_secret(value):
        return key + "=" + MASK
    return param


# --- package sources: where pip and uv fetch packages from --------------------------------
#
# A +cpu / +cu121 wheel came from an index nobody wrote down. pip and uv find that index
# in environment variables and config files; both are read here as text (configparser,
# tomllib), in each tool's order of precedence, and every value keeps the file or
# variable it came from. No network, no subprocess: ``pip config list`` would import pip
# (slow) and uv may not be installed.

#: The pip options that decide where packages come from: name -> kind.
_PIP_OPTIONS = (("index-url", "url"), ("extra-index-url", "list"), ("find-links", "list"),
                ("no-index", "bool"), ("trusted-host", "list"))
_TRUE = ("1", "true", "yes", "y", "on", "t")
_FALSE = ("0", "false", "no", "n", "off", "f")


def collect_package_sources(environ, home=None, prefix=None, etc="/etc") -> dict:
    """pip's and uv's effective index configuration.

    ``environ``: the variables to read (``os.environ`` normally); ``home``: the user's home
    folder (default ``~``); ``prefix``: the interpreter prefix whose ``pip.conf`` counts
    (default ``sys.prefix``); ``etc``: the system configuration folder. Tests pass
    made-up ones. Each value is ``{"value", "source"}`` (source: the variable, or the
    file and section); ``files`` lists the files read, ``errors`` what could not be.
    """
    home = home if home is not None else os.path.expanduser("~")
    prefix = prefix if prefix is not None else sys.prefix
    return {"pip": collect_pip_sources(environ, home, prefix, etc), "uv": collect_uv_sources(environ, home, etc)}


def _source_entry(value, source: str) -> dict:
    if isinstance(value, str):
        value = redact(value)
    return {"value": value, "source": source}


def _empty_sources() -> dict:
    return {"index_url": None, "extra_index_urls": [], "find_links": [], "no_index": None,
            "trusted_hosts": [], "files": [], "errors": []}


def _as_bool(text: str):
    low = text.strip().lower()
    return True if low in _TRUE else False if low in _FALSE else None


# pip ----------------------------------------------------------------------------------------


def pip_config_files(environ, home: str, prefix: str, etc: str = "/etc") -> list:
    """The pip.conf files pip reads, lowest precedence first (pip's own order: global,
    user, site, then ``PIP_CONFIG_FILE``). ``PIP_CONFIG_FILE=/dev/null`` turns them all off;
    an existing ``PIP_CONFIG_FILE`` replaces the user files."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    xdg_dirs = [d for d in (environ.get("XDG_CONFIG_DIRS") or os.path.join(etc, "xdg")).split(os.pathsep) if d]
    files = [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs] + [os.path.join(etc, "pip.conf")]
    if not (env_file and os.path.exists(env_file)):
        user_config = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        files += [os.path.join(home, ".pip", "pip.conf"), os.path.join(user_config, "pip", "pip.conf")]
        if sys.platform == "darwin":
            files.append(os.path.join(home, "Library", "Application Support", "pip", "pip.conf"))
    files.append(os.path.join(prefix, "pip.conf"))
    if env_file:
        files.append(env_file)
    return files


def collect_pip_sources(environ, home: str, prefix: str, etc: str = "/etc") -> dict:
    """Where ``pip install`` fetches from: ``PIP_*`` variables over ``[install]`` over
    ``[global]`` (pip's rule: a command's section beats ``[global]`` in any file), and
    a later file over an earlier one for the same section and key.

    ``for_download`` holds the settings ``pip download`` (what ``parity lock --hashes``
    runs) sees otherwise, through a ``[download]`` section; {} when they are the same.
    """
    out = _empty_sources()
    merged: dict = {}  # (section, key) -> (raw value, "file [section]")
    for path in pip_config_files(environ, home, prefix, etc):
        sections = _read_pip_conf(path, out)
        for section in ("global", "download", "install"):
            for key, value in sections.get(section, {}).items():
                merged[(section, key)] = (value, f"{path} [{section}]")
    _pip_command_view(environ, merged, "install", out)
    download = _pip_command_view(environ, merged, "download", _empty_sources())
    out["for_download"] = {f: download[f] for f in _SOURCE_FIELDS if download[f] != out[f]}
    return out


_SOURCE_FIELDS = ("index_url", "extra_index_urls", "find_links", "no_index", "trusted_hosts")


def _pip_command_view(environ, merged: dict, command: str, out: dict) -> dict:
    """Fill ``out`` with what ``pip <command>`` uses: variable, else ``[command]``, else ``[global]``."""
    for key, kind in _PIP_OPTIONS:
        raw = _pip_env_value(environ, key)
        if raw is None:
            raw = merged.get((command, key)) or merged.get(("global", key))
        if raw is not None:
            _set_option(out, key, kind, raw[0], raw[1])
    return out


def _pip_env_value(environ, key: str):
    name = "PIP_" + key.upper().replace("-", "_")
    value = environ.get(name)
    return (value, name) if value and value.strip() else None


def _read_pip_conf(path: str, out: dict) -> dict:
    """``{section: {normalised key: value}}`` of one pip.conf; {} when absent. A file pip
    would reject is recorded under ``errors``, not raised."""
    text = _read_text(path)
    if text is None:
        return {}
    out["files"].append(path)
    import configparser  # only when a file exists: most machines have none

    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        out["errors"].append(redact(f"{path}: not a valid pip configuration file ({str(exc).splitlines()[0]})"))
        return {}
    # pip accepts index_url and --index-url for index-url
    return {s: {k.lower().lstrip("-").replace("_", "-"): v for k, v in parser.items(s)} for s in parser.sections()}


def _set_option(out: dict, key: str, kind: str, raw: str, source: str) -> None:
    field = {"index-url": "index_url", "extra-index-url": "extra_index_urls", "find-links": "find_links",
             "no-index": "no_index", "trusted-host": "trusted_hosts"}[key]
    if kind == "bool":
        value = _as_bool(raw)
        if value is None:
            out["errors"].append(redact(f"{source}: {key}={raw!r} is not a boolean"))
        else:
            out[field] = _source_entry(value, source)
    elif kind == "list":
        out[field] = [_source_entry(v, source) for v in raw.split()]
    else:
        out[field] = _source_entry(raw.strip(), source)


# uv -----------------------------------------------------------------------------------------


def uv_config_files(environ, home: str, etc: str = "/etc") -> list:
    """The uv.toml files uv reads, highest precedence first: ``UV_CONFIG_FILE`` alone when
    set, none with ``UV_NO_CONFIG``, else the user file then the first system file found."""
    if _as_bool(environ.get("UV_NO_CONFIG") or "0"):
        return []
    if environ.get("UV_CONFIG_FILE"):
        return [environ["UV_CONFIG_FILE"]]
    user_config = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    xdg_dirs = [d for d in (environ.get("XDG_CONFIG_DIRS") or os.path.join(etc, "xdg")).split(os.pathsep) if d]
    system = [os.path.join(d, "uv", "uv.toml") for d in xdg_dirs] + [os.path.join(etc, "uv", "uv.toml")]
    first_system = next((p for p in system if os.path.isfile(p)), None)
    return [os.path.join(user_config, "uv", "uv.toml")] + ([first_system] if first_system else [])


def collect_uv_sources(environ, home: str, etc: str = "/etc") -> dict:
    """Where ``uv pip install`` fetches from. Scalars: ``UV_*`` variable over the user's
    uv.toml over the system's; lists (indexes, find-links) are concatenated in that
    order, as uv combines them. In a uv.toml, ``[pip]`` keys beat top-level ones."""
    out = _empty_sources()
    layers = [("env", _uv_env_layer(environ))]
    for path in uv_config_files(environ, home, etc):
        layers.append((path, _read_uv_toml(path, out)))
    for _, layer in layers:
        if out["index_url"] is None and layer.get("index_url"):
            out["index_url"] = layer["index_url"]
        if out["no_index"] is None and layer.get("no_index"):
            out["no_index"] = layer["no_index"]
        for field in ("extra_index_urls", "find_links", "trusted_hosts"):
            out[field] += layer.get(field, [])
    return out


def _uv_env_layer(environ) -> dict:
    layer: dict = {"extra_index_urls": [], "find_links": [], "trusted_hosts": []}
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL"):  # UV_INDEX_URL is the deprecated spelling
        if environ.get(name, "").strip():
            layer["index_url"] = _source_entry(environ[name].strip(), name)
            break
    for name in ("UV_INDEX", "UV_EXTRA_INDEX_URL"):
        layer["extra_index_urls"] += [_uv_index_entry(v, name) for v in environ.get(name, "").split()]
    layer["find_links"] = [_source_entry(v.strip(), "UV_FIND_LINKS")
                           for v in environ.get("UV_FIND_LINKS", "").split(",") if v.strip()]
    layer["trusted_hosts"] = [_source_entry(v, "UV_INSECURE_HOST") for v in environ.get("UV_INSECURE_HOST", "").split()]
    no_index = _as_bool(environ.get("UV_NO_INDEX", ""))
    if no_index:
        layer["no_index"] = _source_entry(True, "UV_NO_INDEX")
    return layer


def _uv_index_entry(text: str, source: str) -> dict:
    """``name=https://...`` (a named index, UV_INDEX syntax) or a bare URL."""
    name, sep, url = text.partition("=")
    if sep and "://" not in name and "/" not in name:
        entry = _source_entry(url, source)
        entry["name"] = name
        return entry
    return _source_entry(text, source)


def _read_uv_toml(path: str, out: dict) -> dict:
    """The index settings of one uv.toml as a layer; {} when absent or unreadable."""
    text = _read_text(path)
    if text is None:
        return {}
    out["files"].append(path)
    try:
        data = _parse_toml(text)
    except ImportError:
        out["errors"].append(f"{path}: not read: this Python has no TOML parser (tomllib is 3.11+, tomli absent)")
        return {}
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        out["errors"].append(redact(f"{path}: not valid TOML ({exc})"))
        return {}
    return _uv_toml_layer(data, path)


def _parse_toml(text: str) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        import tomli as tomllib  # type: ignore[no-redef]  # the backport, where the interpreter has it
    return tomllib.loads(text)


def _uv_toml_layer(data: dict, path: str) -> dict:
    pip_table = data["pip"] if isinstance(data.get("pip"), dict) else {}
    layer: dict = {"extra_index_urls": [], "find_links": [], "trusted_hosts": []}

    def get(key):  # [pip] beats the top level for `uv pip` commands
        return (pip_table.get(key), path + " [pip]") if key in pip_table else (data.get(key), path)

    for entry in data.get("index") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        item = _source_entry(entry["url"], path + " [[index]]")
        if entry.get("name"):
            item["name"] = str(entry["name"])
        if entry.get("default") is True:
            layer["index_url"] = item
        else:
            layer["extra_index_urls"].append(item)
    value, source = get("index-url")
    if isinstance(value, str) and "index_url" not in layer:
        layer["index_url"] = _source_entry(value, source)
    for key, field in (("extra-index-url", "extra_index_urls"), ("find-links", "find_links"),
                       ("allow-insecure-host", "trusted_hosts")):
        value, source = get(key)
        if isinstance(value, list):
            layer[field] += [_source_entry(v, source) for v in value if isinstance(v, str)]
    value, source = get("no-index")
    if value is True:
        layer["no_index"] = _source_entry(True, source)
    return layer


if __name__ == "__main__":  # pragma: no cover - handy for debugging a foreign interpreter
    json.dump(collect(), sys.stdout, indent=2, sort_keys=True)
