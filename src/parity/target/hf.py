"""A local Hugging Face model directory as a Pipeline (never touches a hub)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity._io import check_not_lfs_pointer
from parity.errors import TargetError
from parity.target.pipeline import Pipeline

#: weight files are hashed per parameter in assets.json; hashing the files again is waste
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ckpt", ".gguf"}
_SKIP_NAMES = {"README.md", ".gitattributes"}


def pipeline_from_hf_dir(path: Path) -> Pipeline:
    """AutoTokenizer + AutoModel from ``path`` only (``local_files_only=True``), in eval mode.

    preprocess = ``tokenizer(texts, padding=True, truncation=True, return_tensors="pt")``
    as a dict; assets = the tokenizer and config files at the top of the directory.
    """
    for file in sorted(path.iterdir()):  # weights fetched as pointers fail later with a misleading error
        check_not_lfs_pointer(file)
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise TargetError(f"{path}: loading a Hugging Face directory needs transformers",
                          fix="pip install transformers") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for bad dirs
        raise TargetError(f"{path}: not loadable as a Hugging Face model ({type(exc).__name__}: {exc})",
                          fix="check config.json, the tokenizer files and the weights in that directory") from exc

    def preprocess(texts: list[Any]) -> dict[str, Any]:
        return dict(tokenizer([str(t) for t in texts], padding=True, truncation=True, return_tensors="pt"))

    return Pipeline(model=model, preprocess=preprocess, assets=hf_asset_files(path), name=path.resolve().name)


def hf_asset_files(path: Path) -> list[Path]:
    """Tokenizer and config files of a model directory (weights excluded, sorted)."""
    return sorted(
        p for p in path.iterdir()
        if p.is_file() and p.suffix.lower() not in _WEIGHT_SUFFIXES and p.name not in _SKIP_NAMES
    )
