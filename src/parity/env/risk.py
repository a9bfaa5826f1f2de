"""The risk table: how likely a difference is to change numerics or speed.

This is the one place where that knowledge lives. Each row is data, matched in order
(first match wins) against ``"<category>:<name>"``:

- packages use ``"package:<canonical name>"`` (PEP 503: lower case, ``-`` separators),
  so ``"package:nvidia-*"`` matches every CUDA wheel;
- facts of the environment use the dotted path of the value inside the snapshot,
  e.g. ``"platform:glibc"``, ``"cpu:flag.avx512f"``, ``"runtime:torch.num_threads"``,
  ``"env_var:OMP_NUM_THREADS"``.

To teach parity about a package or fact, add a row to :data:`RISK_TABLE` (more specific
patterns above more general ones). :func:`risk_for` and :func:`package_risk` are the
lookups; both are pure functions of the table.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import lru_cache

from parity.env._collect import canonical_name

LEVELS = ("high", "medium", "low")
STAGES = ("preprocess", "model", "postprocess")

_PRE, _MODEL, _POST = "preprocess", "model", "postprocess"


@dataclass(frozen=True)
class Risk:
    """How a difference can hurt: ``level`` (high/medium/low), a one-line ``reason``,
    and the pipeline ``stages`` it plausibly touches (subset of :data:`STAGES`)."""

    level: str
    reason: str
    stages: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"level": self.level, "reason": self.reason, "stages": list(self.stages)}


#: (pattern on "<category>:<name>", level, one-line reason, stages). First match wins.
RISK_TABLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # --- packages that execute model math -------------------------------------------
    ("package:torch", "high", "executes model math (kernels, dispatch, numerics)", (_MODEL,)),
    ("package:pytorch-triton*", "high", "generates GPU kernels for torch.compile", (_MODEL,)),
    ("package:triton", "high", "generates GPU kernels for torch.compile", (_MODEL,)),
    ("package:nvidia-cudnn-*", "high", "cuDNN convolution/attention kernels", (_MODEL,)),
    ("package:nvidia-cublas*", "high", "cuBLAS matmul kernels", (_MODEL,)),
    ("package:nvidia-ml-py*", "low", "GPU monitoring bindings (NVML), not the math", ()),
    ("package:nvidia-nvtx-*", "low", "profiling markers, not the math", ()),
    ("package:nvidia-*", "high", "CUDA runtime library used by torch kernels", (_MODEL,)),
    ("package:intel-openmp", "high", "OpenMP runtime: threading of CPU kernels", (_MODEL,)),
    ("package:mkl*", "high", "BLAS kernel family (MKL) for CPU matmul", (_MODEL,)),
    ("package:*openblas*", "high", "BLAS kernel family (OpenBLAS) for CPU matmul", (_MODEL,)),
    ("package:onnxruntime*", "high", "executes exported model math", (_MODEL,)),
    ("package:tensorrt*", "high", "executes exported model math", (_MODEL,)),
    ("package:xformers", "high", "attention kernels", (_MODEL,)),
    ("package:flash-attn", "high", "attention kernels", (_MODEL,)),
    ("package:bitsandbytes", "high", "quantized matmul kernels", (_MODEL,)),
    ("package:accelerate", "medium", "device placement and dtype casting of models", (_MODEL,)),
    ("package:transformers", "high", "model code and tokenizer wrappers", (_PRE, _MODEL, _POST)),
    ("package:sentence-transformers", "high", "pooling and normalisation of embeddings", (_MODEL, _POST)),
    ("package:timm", "high", "model code and image transforms", (_PRE, _MODEL)),
    ("package:torchvision", "high", "image decoding and transforms, vision ops", (_PRE, _MODEL)),
    ("package:torchaudio", "high", "audio decoding and feature extraction", (_PRE, _MODEL)),
    ("package:numpy", "high", "array math in pre/postprocessing; BLAS it bundles", (_PRE, _POST)),
    ("package:scipy", "medium", "numerical routines in pre/postprocessing", (_PRE, _POST)),
    ("package:onnx", "medium", "export format and shape inference", (_MODEL,)),
    ("package:onnxscript", "medium", "ONNX export translation", (_MODEL,)),
    ("package:safetensors", "medium", "reads and writes weights", (_MODEL,)),
    # --- preprocessing ---------------------------------------------------------------
    ("package:tokenizers", "high", "tokenization", (_PRE,)),
    ("package:sentencepiece", "high", "tokenization", (_PRE,)),
    ("package:tiktoken", "high", "tokenization", (_PRE,)),
    ("package:regex", "medium", "pre-tokenization patterns", (_PRE,)),
    ("package:opencv*", "high", "image decoding and resizing", (_PRE,)),
    ("package:pillow*", "high", "image decoding and resizing", (_PRE,)),
    ("package:albumentations", "high", "image transforms", (_PRE,)),
    ("package:scikit-image", "medium", "image transforms", (_PRE,)),
    ("package:librosa", "high", "audio feature extraction", (_PRE,)),
    ("package:soundfile", "medium", "audio decoding", (_PRE,)),
    ("package:av", "medium", "video/audio decoding", (_PRE,)),
    ("package:pandas", "medium", "tabular preprocessing", (_PRE, _POST)),
    ("package:scikit-learn", "medium", "feature transforms and postprocessing", (_PRE, _POST)),
    ("package:huggingface-hub", "low", "asset download and caching (not the math)", (_PRE,)),
    ("package:threadpoolctl", "low", "reads and limits BLAS threads", (_MODEL,)),
    # --- everything else -------------------------------------------------------------
    ("package:*", "low", "not known to touch numerics or speed", ()),
    # --- the interpreter and the OS --------------------------------------------------
    ("python:version", "medium", "interpreter changed (float formatting, hashing, C extensions rebuilt)", (_PRE, _MODEL, _POST)),
    ("python:implementation", "high", "another Python implementation", (_PRE, _MODEL, _POST)),
    ("python:*", "low", "interpreter detail", ()),
    ("platform:machine", "high", "CPU architecture changed: other kernels entirely", (_PRE, _MODEL, _POST)),
    ("platform:glibc", "medium", "C library changed (libm math functions, allocator)", (_PRE, _MODEL, _POST)),
    ("platform:system", "high", "operating system changed", (_PRE, _MODEL, _POST)),
    ("platform:release", "low", "kernel release changed", ()),
    ("platform:*", "low", "OS detail", ()),
    # --- CPU ------------------------------------------------------------------------
    ("cpu:flag.avx512*", "high", "AVX-512 changes which CPU kernels run", (_MODEL,)),
    ("cpu:flag.amx*", "high", "AMX changes which CPU matmul kernels run", (_MODEL,)),
    ("cpu:flag.avx2", "high", "AVX2 changes which CPU kernels run", (_MODEL,)),
    ("cpu:flag.fma", "high", "FMA changes rounding of CPU kernels", (_MODEL,)),
    ("cpu:flag.*vnni*", "high", "VNNI changes int8/bf16 CPU kernels", (_MODEL,)),
    ("cpu:flag.sve*", "high", "SVE changes which CPU kernels run", (_MODEL,)),
    ("cpu:flag.*", "medium", "CPU instruction set changed", (_MODEL,)),
    ("cpu:model", "medium", "another CPU model: other speed, maybe other kernels", (_MODEL,)),
    ("cpu:*cores*", "medium", "core count changes default thread counts and speed", (_PRE, _MODEL, _POST)),
    ("cpu:cgroup_cpu_quota", "medium", "CPU quota limits speed", (_PRE, _MODEL, _POST)),
    ("cpu:*", "low", "CPU detail", ()),
    # --- torch build facts (read from torch/version.py) --------------------------------
    ("torch:cuda", "high", "torch built for another CUDA (or for CPU)", (_MODEL,)),
    ("torch:hip", "high", "torch built for another ROCm", (_MODEL,)),
    ("torch:rocm", "high", "torch built for another ROCm", (_MODEL,)),
    ("torch:xpu", "high", "torch built for another XPU toolkit", (_MODEL,)),
    ("torch:variant", "high", "another torch wheel variant (CPU/CUDA/ROCm build)", (_MODEL,)),
    ("torch:git_version", "high", "torch built from other sources", (_MODEL,)),
    ("torch:debug", "medium", "torch debug build: slower", (_MODEL,)),
    ("torch:*", "medium", "torch build detail", (_MODEL,)),
    # --- GPU -------------------------------------------------------------------------
    ("gpu:driver_version", "high", "GPU driver changed", (_MODEL,)),
    ("gpu:cuda_driver_version", "high", "CUDA driver API changed", (_MODEL,)),
    ("gpu:status", "high", "GPU present on one side only", (_MODEL,)),
    ("gpu:devices*", "high", "another GPU model: other kernels and speed", (_MODEL,)),
    ("gpu:count", "medium", "GPU count changed", (_MODEL,)),
    ("gpu:*", "low", "GPU detail", ()),
    # --- runtime state (with --runtime or inside a record) ------------------------------
    ("runtime:threadpool.*.internal_api", "high", "BLAS kernel family changed", (_MODEL, _PRE, _POST)),
    ("runtime:threadpool.*.version", "high", "BLAS/OpenMP library version changed", (_MODEL, _PRE, _POST)),
    ("runtime:threadpool.*.architecture", "high", "BLAS kernel architecture changed", (_MODEL, _PRE, _POST)),
    ("runtime:threadpool.*.num_threads", "medium", "BLAS/OpenMP threads changed: speed and reduction order", (_MODEL, _PRE, _POST)),
    ("runtime:threadpool.*.threading_layer", "medium", "BLAS threading layer changed", (_MODEL, _PRE, _POST)),
    ("runtime:threadpool.*", "high", "BLAS/OpenMP library loaded on one side only", (_MODEL, _PRE, _POST)),
    ("runtime:torch.build.blas_info", "high", "BLAS kernel family torch was built with changed", (_MODEL,)),
    ("runtime:torch.build.lapack_info", "medium", "LAPACK torch was built with changed", (_MODEL,)),
    ("runtime:torch.build.*", "medium", "torch build option changed", (_MODEL,)),
    ("runtime:torch.cpu_capability", "high", "torch dispatches to other CPU kernels", (_MODEL,)),
    ("runtime:torch.cudnn_version", "high", "cuDNN kernels changed", (_MODEL,)),
    ("runtime:torch.num_threads", "medium", "intra-op threads changed: speed and reduction order", (_MODEL,)),
    ("runtime:torch.num_interop_threads", "low", "inter-op threads changed", (_MODEL,)),
    ("runtime:torch.deterministic*", "medium", "deterministic algorithms flag changed", (_MODEL,)),
    ("runtime:torch.float32_matmul_precision", "high", "float32 matmul precision (TF32/bf16) changed", (_MODEL,)),
    ("runtime:torch.*tf32*", "high", "TF32 flag changed: float32 matmul/conv precision", (_MODEL,)),
    ("runtime:torch.*reduced_precision*", "high", "reduced-precision reductions flag changed", (_MODEL,)),
    ("runtime:torch.cudnn_benchmark", "medium", "cuDNN autotuning changed: other kernels per shape", (_MODEL,)),
    ("runtime:torch.cudnn_*", "medium", "cuDNN flag changed", (_MODEL,)),
    ("runtime:torch.grad_enabled", "medium", "grad mode changed: speed and memory", (_MODEL,)),
    ("runtime:torch.default_dtype", "high", "default dtype changed", (_PRE, _MODEL, _POST)),
    ("runtime:torch.autocast*", "high", "autocast changes the dtype of model math", (_MODEL,)),
    ("runtime:torch.cuda*", "high", "CUDA availability or devices changed", (_MODEL,)),
    ("runtime:torch.mps_available", "high", "Apple GPU (MPS) available on one side only", (_MODEL,)),
    ("runtime:torch.mkldnn*", "high", "oneDNN kernels on one side only", (_MODEL,)),
    ("runtime:torch.*", "medium", "torch runtime state changed", (_MODEL,)),
    # model-level state a record adds under runtime.model (parity.records.runtime)
    ("runtime:model.training_modules", "high", "submodules in training mode (dropout, batch-norm statistics)", (_MODEL,)),
    ("runtime:model.parameters", "high", "parameter dtype or device changed", (_MODEL,)),
    ("runtime:model.buffers", "high", "buffer dtype or device changed", (_MODEL,)),
    ("runtime:model.model_class", "high", "another model class", (_MODEL,)),
    ("runtime:model.default_dtype", "high", "default dtype changed", (_PRE, _MODEL, _POST)),
    ("runtime:model.autocast*", "high", "autocast changes the dtype of model math", (_MODEL,)),
    ("runtime:model.float32_matmul_precision", "high", "float32 matmul precision (TF32/bf16) changed", (_MODEL,)),
    ("runtime:model.*tf32*", "high", "TF32 flag changed: float32 matmul/conv precision", (_MODEL,)),
    ("runtime:model.threads", "medium", "intra-op threads changed: speed and reduction order", (_MODEL,)),
    ("runtime:model.interop_threads", "low", "inter-op threads changed", (_MODEL,)),
    ("runtime:model.deterministic*", "medium", "deterministic algorithms flag changed", (_MODEL,)),
    ("runtime:model.cudnn.benchmark", "medium", "cuDNN autotuning changed: other kernels per shape", (_MODEL,)),
    ("runtime:model.grad_enabled", "medium", "grad mode changed: speed and memory", (_MODEL,)),
    ("runtime:model.inference_mode", "low", "inference mode changed: speed and memory", (_MODEL,)),
    ("runtime:model.*", "medium", "model runtime state changed", (_MODEL,)),
    ("runtime:*", "medium", "runtime state changed", (_MODEL,)),
    # --- environment variables ---------------------------------------------------------
    ("env_var:*NUM_THREADS", "medium", "thread count changed: speed and reduction order", (_PRE, _MODEL, _POST)),
    ("env_var:MKL_CBWR", "high", "MKL conditional numerical reproducibility changed", (_MODEL,)),
    ("env_var:MKL_ENABLE_INSTRUCTIONS", "high", "MKL instruction set changed", (_MODEL,)),
    ("env_var:MKL_*", "medium", "MKL setting changed", (_MODEL,)),
    ("env_var:OPENBLAS_CORETYPE", "high", "OpenBLAS kernel family changed", (_MODEL,)),
    ("env_var:ATEN_CPU_CAPABILITY", "high", "torch CPU kernel family forced", (_MODEL,)),
    ("env_var:ONEDNN_MAX_CPU_ISA", "high", "oneDNN instruction set changed", (_MODEL,)),
    ("env_var:DNNL_MAX_CPU_ISA", "high", "oneDNN instruction set changed", (_MODEL,)),
    ("env_var:CUBLAS_WORKSPACE_CONFIG", "high", "cuBLAS determinism setting changed", (_MODEL,)),
    ("env_var:NVIDIA_TF32_OVERRIDE", "high", "TF32 forced on or off", (_MODEL,)),
    ("env_var:CUDA_VISIBLE_DEVICES", "medium", "other GPUs visible", (_MODEL,)),
    ("env_var:HIP_VISIBLE_DEVICES", "medium", "other GPUs visible", (_MODEL,)),
    ("env_var:ROCR_VISIBLE_DEVICES", "medium", "other GPUs visible", (_MODEL,)),
    ("env_var:TORCH_ALLOW_TF32*", "high", "TF32 flag changed", (_MODEL,)),
    ("env_var:PYTORCH_*", "medium", "torch setting changed", (_MODEL,)),
    ("env_var:TORCH*", "medium", "torch setting changed", (_MODEL,)),
    ("env_var:OMP_*", "medium", "OpenMP setting changed", (_MODEL,)),
    ("env_var:KMP_*", "medium", "Intel OpenMP setting changed", (_MODEL,)),
    ("env_var:GOMP_*", "medium", "GNU OpenMP setting changed", (_MODEL,)),
    ("env_var:OPENBLAS_*", "medium", "OpenBLAS setting changed", (_MODEL,)),
    ("env_var:TOKENIZERS_*", "low", "tokenizers setting changed (parallelism)", (_PRE,)),
    ("env_var:LD_PRELOAD", "high", "other shared libraries forced in (allocator, BLAS)", (_PRE, _MODEL, _POST)),
    ("env_var:LD_LIBRARY_PATH", "medium", "other shared libraries may be loaded", (_PRE, _MODEL, _POST)),
    ("env_var:PYTHONHASHSEED", "low", "hash seed changed (set/dict iteration order)", (_PRE, _POST)),
    ("env_var:*", "low", "environment variable changed", ()),
    # --- pip/uv index configuration (snapshot section package_sources) ---------------------
    ("package_source:*", "medium", "where pip/uv fetch packages from changed", ()),
    # --- anything else ---------------------------------------------------------------------
    ("*", "low", "environment detail changed", ()),
)


@lru_cache(maxsize=4096)
def risk_for(category: str, name: str) -> Risk:
    """The first row of :data:`RISK_TABLE` that matches ``"<category>:<name>"``.

    Matching is case-sensitive for facts and env vars; package names are canonicalised
    first. The table ends with a catch-all row, so this always returns a :class:`Risk`.
    """
    if category == "package":
        name = canonical_name(name)
    key = f"{category}:{name}"
    for pattern, level, reason, stages in RISK_TABLE:
        if fnmatch.fnmatchcase(key, pattern):
            return Risk(level, reason, stages)
    raise AssertionError("RISK_TABLE has no catch-all row")  # pragma: no cover


def package_risk(name: str) -> Risk:
    """Risk of a change in the distribution ``name`` (any spelling; canonicalised here)."""
    return risk_for("package", name)


def level_rank(level: str) -> int:
    """Sort key: 0 for high, 1 for medium, 2 for low, 3 for anything else (a JSON
    document from elsewhere): the one risk order every ranking uses."""
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)
