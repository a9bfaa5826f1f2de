"""Hand-built records in the real on-disk format, for fast tests of the comparison.

The capture side has its own tests; here a record is written directly (layers.json,
shards, stages, manifest with checksums) so each test states exactly what differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from parity._io import atomic_write_json
from parity.records.format import finalize_manifest


def _entry(key: str, t: torch.Tensor, batch: int, name: str | None) -> dict[str, Any]:
    module, _, rest = key.partition("#")
    call, _, out = rest.partition("/")
    return {
        "key": key, "module": module, "call": int(call), "out": "/" + out, "batch": batch, "type": "Linear",
        "kind": "tensor", "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
        "stats": {"min": float(t.min()), "max": float(t.max()), "mean": float(t.mean()), "std": float(t.std()),
                  "l2": float(t.norm()), "nan": int(t.isnan().sum()), "inf": int(t.isinf().sum())},
        "hash": str(hash(t.numpy().tobytes())), "shard": "activations/00000.safetensors" if name else None,
        "tensor": name,
    }


def write_record(
    root: Path,
    layers: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]],
    *,
    stages: dict[str, torch.Tensor] | None = None,
    capture: str = "full",
    packages: dict[str, str] | None = None,
    files: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    runtime: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
) -> Path:
    """A complete record at ``root``: ``layers`` per batch (key -> tensor) in execution order."""
    batches = layers if isinstance(layers, list) else [layers]
    root.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    entries = []
    for b, batch in enumerate(batches):
        for i, (key, t) in enumerate(batch.items()):
            name = f"t{b}_{i}" if capture != "outputs" else None
            if name:
                tensors[name] = t.clone().contiguous()
            entries.append(_entry(key, t, b, name))
    if tensors:
        (root / "activations").mkdir()
        save_file(tensors, str(root / "activations" / "00000.safetensors"))
    save_file({k: v.clone().contiguous() for k, v in (stages or {}).items()} or {"0/model/out": torch.zeros(1)},
              str(root / "stages.safetensors"))
    atomic_write_json(root / "layers.json", entries if capture != "outputs" else [])
    env = env or {"schema": "parity.snapshot/1", "packages": {k: {"name": k, "version": v} for k, v in (packages or {}).items()},
           "runtime": runtime or {}}
    atomic_write_json(root / "env.json", env)
    atomic_write_json(root / "assets.json", {"files": {k: {"sha256": v, "size": 1} for k, v in (files or {}).items()},
                                             "params": {k: {"hash": v} for k, v in (params or {}).items()}})
    finalize_manifest(root, {"target": "model.py:build", "capture": capture, "batch_size": 2, "tolerances": {}})
    return root


@pytest.fixture
def make_record(tmp_path: Path) -> Callable[..., Path]:
    def _make(name: str, layers: Any, **kw: Any) -> Path:
        return write_record(tmp_path / name, layers, **kw)

    return _make
