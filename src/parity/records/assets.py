"""assets.json: sha256 per asset file and a hash per parameter and buffer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from parity._io import check_not_lfs_pointer, sha256_file
from parity.errors import TargetError
from parity.records.stats import content_hash


def hash_asset_files(assets: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """{key: {"sha256", "size", "source"}}; a directory contributes every file under it.

    ``key`` is the asset's own name plus the path inside it (``model/vocab.txt``) so A and
    B match even when the assets live in different folders on the two machines.
    """
    files: dict[str, dict[str, Any]] = {}
    for asset in assets:
        root = Path(asset)
        if root.is_file():
            files[root.name] = _file_entry(root)
        elif root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                files[f"{root.resolve().name}/{path.relative_to(root).as_posix()}"] = _file_entry(path)
        else:
            raise TargetError(f"{root}: asset listed by the target does not exist",
                              fix="fix Pipeline.assets in the build function")
    return files


def _file_entry(path: Path) -> dict[str, Any]:
    check_not_lfs_pointer(path)  # its hash would stand for the pointer, not the file
    return {"sha256": sha256_file(path), "size": path.stat().st_size, "source": str(path.resolve())}


def hash_tensors(named: Iterable[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """{name: {"dtype", "shape", "device", "hash"}}; a tensor shared under several names
    (tied weights) is hashed once and its later names carry ``"tied_to"``."""
    out: dict[str, dict[str, Any]] = {}
    first_name: dict[tuple[int, int], str] = {}
    for name, t in named:
        ident = (t.untyped_storage().data_ptr(), t.storage_offset())
        entry = {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "device": str(t.device)}
        if ident in first_name and t.numel():
            entry.update(hash=out[first_name[ident]]["hash"], tied_to=first_name[ident])
        else:
            first_name[ident] = name
            entry["hash"] = content_hash(t)
        out[name] = entry
    return out


def assets_json(pipeline_assets: Iterable[str | Path], model: Any) -> dict[str, Any]:
    """The whole assets.json document for a pipeline."""
    import torch

    doc: dict[str, Any] = {"files": hash_asset_files(pipeline_assets), "params": {}, "buffers": {}}
    if isinstance(model, torch.nn.Module):
        doc["params"] = hash_tensors(model.named_parameters(remove_duplicate=False))
        doc["buffers"] = hash_tensors(model.named_buffers(remove_duplicate=False))
    return doc
