"""The next step after a stats verify that diverged: a targeted full record on machine A.

A stats record names the first divergent layer but cannot say which layer *introduces*
the error (replay needs A's module inputs) and its sample may place the divergence a
layer late. Recording everything in full is out of reach for a large model, so the
result carries the exact ``parity record ... --capture full --layers PATTERN`` command
that stores full tensors and replay inputs for the block around the first divergent
layer (and the block before it) and stats everywhere else; ``parity verify`` on that
record names the introducing layer.

A *block* is the module path up to its first numeric part (``encoder.layer.3`` for
``encoder.layer.3.attention.self.query``: one element of a ModuleList or Sequential),
or the module itself when its path has no numeric part (``embeddings.word_embeddings``:
a wrapper around the whole model, such as ``lm`` in ``lm.model.embed_tokens``, must
never be chosen). Patterns select a module and everything inside it
(:func:`parity.records.capture.layer_selector`).
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import Any

from parity._text import one_line
from parity.comparison.tolerances import strip_wrapper_prefix
from parity.records.format import Record

_GLOB = {"[": "[[]", "*": "[*]", "?": "[?]"}


def block_of(module: str) -> str:
    """The block a module path belongs to ("" for the root)."""
    parts = [p for p in module.split(".") if p]
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts)


def blocks_in_order(rec: Record) -> list[str]:
    """A's blocks in the order their first layer entry completed (batch 0)."""
    seen: dict[str, None] = {}
    for e in rec.layers:
        if int(e.get("batch", 0)) == 0:
            seen.setdefault(block_of(strip_wrapper_prefix(str(e.get("module", "")))), None)
    return list(seen)


def suggest(rec_a: Record, result: Any) -> dict[str, Any] | None:
    """``{"command", "layers", "reason"}`` for a targeted full record on machine A, or
    None when nothing diverged or A's record already decides the introducing layer."""
    first = result.first_divergent_layer
    if not first or rec_a.capture == "full" or result.first_introducing_layer:
        return None
    row = next((x for x in result.layers if x.get("key") == first), None)
    module = strip_wrapper_prefix(str((row or {}).get("module") or ""))
    order = [b for b in blocks_in_order(rec_a) if b]
    block = block_of(module)
    targeted = rec_a.manifest.get("full_layers")
    if not targeted:
        chosen = [*_before(order, block, 1), block]
        reason = (f"the first divergent layer {first} is in {block or 'the root module'}: record that block "
                  "(and the one before it) in full, stats elsewhere; `parity verify` on it names the layer "
                  "that introduces the error")
    else:
        replayed = [x for x in result.layers if x.get("introduced") is False]
        if not replayed:
            return None  # not replayed (notes say why): a wider record would not help
        earliest = block_of(strip_wrapper_prefix(str(replayed[0].get("module") or "")))
        chosen = _before(order, earliest, 2)
        reason = (f"the layers this record stored in full inherit the error ({replayed[0].get('key')} reproduces "
                  "A on A's inputs): it comes from earlier; record the blocks before them in full")
    chosen = [c for c in dict.fromkeys(chosen) if c]
    if not chosen:
        return {"command": command_for(rec_a, None), "layers": None, "reason": reason}
    return {"command": command_for(rec_a, chosen), "layers": chosen, "reason": reason}


def _before(order: list[str], block: str, n: int) -> list[str]:
    """Up to ``n`` blocks that ran before ``block``, in order, none of them around it."""
    if block not in order:
        return []
    earlier = [b for b in order[: order.index(block)] if not block.startswith(b + ".")]
    return earlier[-n:] if n else []


def command_for(rec_a: Record, blocks: list[str] | None) -> str:
    """``parity record`` with A's target, inputs, batch size and seed, capturing ``blocks``
    in full (every module when None), quoted for a POSIX shell."""
    manifest = rec_a.manifest
    target = _safe(manifest.get("target")) or "TARGET"
    words = ["parity", "record", target]
    source = _safe((manifest.get("inputs") or {}).get("source"))
    if source:
        words += ["--inputs", source]
    words += ["--capture", "full"]
    for b in blocks or []:
        words += ["--layers", "".join(_GLOB.get(c, c) for c in b)]
    if isinstance(manifest.get("batch_size"), int):
        words += ["--batch-size", str(manifest["batch_size"])]
    if manifest.get("seed") not in (None, 0):
        words += ["--seed", str(manifest["seed"])]
    name = PurePosixPath(str(rec_a.location).rstrip("/")).name or "record"
    words += ["-o", (_safe(name) or "record") + ("-layers" if blocks else "-full")]
    return " ".join(shlex.quote(w) for w in words)


def _safe(value: Any) -> str | None:
    """A string from the record, or None when it holds anything a terminal would not show."""
    if not isinstance(value, str) or not value or one_line(value) != value:
        return None
    return value
