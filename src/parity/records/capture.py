"""Forward hooks that turn one model call into execution-ordered layer entries.

Every submodule (root included, path "") gets a forward hook; with capture="full" also
a forward pre-hook with kwargs that stores the module's call arguments for replay.
Call indices count calls of a module within one batch (``encoder#0``, ``encoder#1``).
Values are summarised or copied inside the hook, before any later in-place op can
change them. Within a batch, a tensor seen again with the same storage, view and
version (a Dropout in eval mode, a layer's output that is the next one's input) is
summarised and stored once.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from functools import partial
from typing import Any

from parity.records.flatten import flatten, structure
from parity.records.stats import SAMPLE_SIZE, cpu_copy, summarize, take_sample, tensor_stats
from parity.records.writer import ShardWriter

_SCALARS = (type(None), bool, int, float, str)
SUMMARIZE_IN_WRITER = False


def hookable(model: Any) -> str | None:
    """None when ``model``'s submodules can be hooked, else why not (one line)."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return "a TorchScript module runs as one unit; only its stages are recorded"
    if not isinstance(model, torch.nn.Module):
        return f"the model is a {type(model).__name__}, not a torch.nn.Module; only its stages are recorded"
    return None


class LayerCapture:
    """Hooks on every submodule of ``model`` while used as a context manager.

    ``level`` is "stats" (summary + seeded sample per tensor) or "full" (every tensor
    and the module inputs). ``entries`` and ``module_inputs`` hold blob names until
    :meth:`resolve` swaps them for shard locations once the writer is closed.
    """

    def __init__(self, model: Any, level: str, writer: ShardWriter, seed: int = 0,
                 sample_size: int = SAMPLE_SIZE) -> None:
        self.model = model
        self.level = level
        self.writer = writer
        self.seed = seed
        self.sample_size = sample_size
        self.entries: list[dict[str, Any]] = []
        self.module_inputs: list[dict[str, Any]] = []
        self.batch = 0
        self._counts: dict[str, int] = defaultdict(int)
        self._open_calls: dict[str, list[int]] = defaultdict(list)
        self._seen: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] = {}
        self._handles: list[Any] = []
        self._samples: list[tuple[str, Any]] = []
        #: full capture: hash and stats on the writer thread (True) or in the hook (False)
        self.summarize_in_writer = SUMMARIZE_IN_WRITER
        self._stored: dict[tuple[str, str, tuple[int, ...]], str] = {}  # content -> blob, whole record

    def __enter__(self) -> LayerCapture:
        for path, module in self.model.named_modules():
            kind = type(module).__name__
            if self.level == "full":
                self._handles.append(module.register_forward_pre_hook(
                    partial(self._on_input, path), with_kwargs=True))
            self._handles.append(module.register_forward_hook(partial(self._on_output, path, kind)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._flush_samples()

    def begin_batch(self, batch: int) -> None:
        """Start counting calls afresh for input batch ``batch``."""
        self._flush_samples()
        self.batch = batch
        self._counts.clear()
        self._open_calls.clear()
        self._seen.clear()

    # -- hooks ---------------------------------------------------------------------------
    def _on_input(self, path: str, module: Any, args: Any, kwargs: Any) -> None:
        call = self._counts[path]
        self._counts[path] = call + 1
        self._open_calls[path].append(call)
        key = f"{path}#{call}"
        self.module_inputs.append({
            "key": key, "module": path, "call": call, "batch": self.batch,
            "args": structure(tuple(args), partial(self._store_input, key, "/args")),
            "kwargs": structure(dict(kwargs), partial(self._store_input, key, "/kwargs")),
        })

    def _on_output(self, path: str, kind: str, module: Any, args: Any, output: Any) -> None:
        stack = self._open_calls.get(path)
        if stack:
            call = stack.pop()
        else:
            call = self._counts[path]
            self._counts[path] = call + 1
        for out, value in flatten(output, "/out"):
            entry: dict[str, Any] = {"key": f"{path}#{call}{out}", "module": path, "call": call, "out": out,
                     "batch": self.batch, "type": kind}
            entry.update(self._describe(entry["key"], value))
            self.entries.append(entry)

    # -- per value -----------------------------------------------------------------------
    def _describe(self, key: str, value: Any) -> dict[str, Any]:
        import torch

        if not isinstance(value, torch.Tensor):
            described: dict[str, Any] = {"kind": type(value).__name__, "shape": None, "dtype": None,
                                         "stats": None, "hash": None}
            if isinstance(value, _SCALARS):
                described["value"] = value
            return described
        base = {"kind": "tensor", "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        ident = _identity(value)
        seen = self._seen.get(ident)
        if seen is not None and _same(seen[0](), value):
            if seen[1].get("stats") is None and seen[1].get("hash") is not None:
                # First seen as a module input (no stats kept then): summarise it now.
                seen[1]["stats"] = tensor_stats(value)
            return {**base, **seen[1]}
        summary = self._store_full(key, value) if self.level == "full" else self._summarise(key, value)
        self._seen[ident] = (weakref.ref(value), summary)
        return {**base, **summary}

    def _summarise(self, key: str, t: Any) -> dict[str, Any]:
        blob = f"{self.batch}/{key}/sample"
        t = t.detach()
        if t.numel() == 0 or t.is_complex() or t.is_sparse or t.is_quantized:
            return {"stats": None, "hash": None, "blob": None}
        # Samples are tiny: handed to the writer per batch, not per tensor.
        self._samples.append((blob, take_sample(t.reshape(-1), self.seed, self.sample_size)))
        stats, digest = summarize(t)
        return {"stats": stats, "hash": digest, "blob": blob}

    def _flush_samples(self) -> None:
        if self._samples:
            self.writer.put_many(self._samples)
            self._samples = []

    def _store_full(self, key: str, t: Any, with_stats: bool = True) -> dict[str, Any]:
        """Hash (and summarise) ``t`` now; copy it to the writer unless the same content
        (hash, dtype, shape) is already stored anywhere in this record. With
        ``summarize_in_writer`` the hook only copies and the writer thread does the rest."""
        blob = f"{self.batch}/{key}"
        if t.is_sparse or t.is_quantized:
            return {"stats": None, "hash": None, "blob": None}
        t = t.detach()
        if self.summarize_in_writer:
            self.writer.put(blob, cpu_copy(t), summarize=True)
            return {"blob": blob, "deferred": True}
        # On an accelerator, one transfer now serves the hash, the stats and the writer.
        host = t if t.device.type == "cpu" else cpu_copy(t)
        stats, digest = summarize(host, with_stats)
        summary = {"stats": stats, "hash": digest, "blob": blob}
        content = (digest, str(t.dtype), tuple(t.shape))
        if content in self._stored:
            summary["blob"] = self._stored[content]
            return summary
        self._stored[content] = blob
        # A private CPU copy now: later in-place ops (ReLU(inplace=True)) cannot reach it.
        self.writer.put(blob, cpu_copy(t) if host is t else host)
        return summary

    def _store_input(self, key: str, where: str, path: str, t: Any) -> str | None:
        ident = _identity(t)
        seen = self._seen.get(ident)
        if seen is not None and _same(seen[0](), t) and seen[1].get("blob"):
            return str(seen[1]["blob"])
        summary = self._store_full(f"{key}/in{where}{path}", t, with_stats=False)
        if summary["blob"] is not None:
            self._seen[ident] = (weakref.ref(t), {**summary, "stats": None})
        return summary["blob"]

    # -- after the writer is closed ------------------------------------------------------
    def resolve(self) -> None:
        """Replace blob names by shard/tensor locations (and, for full, hash + stats)."""
        for entry in self.entries:
            blob = entry.pop("blob", None)
            shard, tensor = self.writer.location(blob) if blob else (None, None)
            entry["shard"], entry["tensor"] = shard, tensor
            if entry.pop("deferred", False):
                entry["hash"], entry["stats"] = self.writer.blobs[blob]["hash"], self.writer.blobs[blob]["stats"]
            entry.setdefault("hash", None)
            entry.setdefault("stats", None)
        for call in self.module_inputs:
            call["args"] = _resolve_node(call["args"], self.writer)
            call["kwargs"] = _resolve_node(call["kwargs"], self.writer)


def _identity(t: Any) -> tuple[Any, ...]:
    """Same storage, same view and same version: the same values, without reading them."""
    try:
        ptr = t.untyped_storage().data_ptr()
        version = t._version
    except RuntimeError:  # inference tensors track no version; never treat them as seen
        return (id(t), object())
    return (ptr, t.device, t.dtype, t.storage_offset(), tuple(t.shape), tuple(t.stride()), version)


def _same(previous: Any, t: Any) -> bool:
    # The earlier tensor must still be alive: a freed one's memory may be reused.
    return previous is not None and previous.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()


def _resolve_node(node: Any, writer: ShardWriter) -> Any:
    if "tensor" in node:
        blob = node["tensor"]
        shard, tensor = writer.location(blob) if blob else (None, None)
        if shard is None:
            return {"object": "Tensor (not storable)"}
        return {"tensor": {"shard": shard, "name": tensor}}
    for container in ("dict",):
        if container in node:
            return {**node, container: {k: _resolve_node(v, writer) for k, v in node[container].items()}}
    for container in ("tuple", "list"):
        if container in node:
            return {container: [_resolve_node(v, writer) for v in node[container]]}
    return node
