"""Forward hooks that turn one model call into execution-ordered layer entries.

Every submodule (root included, path "") gets a forward hook; with capture="full" also
a forward pre-hook with kwargs that stores the module's call arguments for replay.
Targeted capture (``full=`` a :func:`layer_selector`, ``parity record --capture full
--layers PATTERN``) is stats capture everywhere except in the selected modules, which
get the pre-hook and full tensors. Call indices count calls of a module within one
batch (``encoder#0``, ``encoder#1``).

Nothing a hook sees outlives the batch's forward except what the record keeps: a row
holds a :class:`~parity.records.stats.Summary` (stats, a 64-element sample, the hash
blocks: 1/4096 of the tensor) or, for a non-tensor output, a JSON scalar or the type's
name, never the object (a KV cache, a model output) that holds tensors.

A hook does as little as it can, because inside a forward every Python operation runs
with cold caches: it reads what only it can read (the values, before a later in-place
op changes them: hash blocks, stats, sample, and for full capture a private copy) and
appends one row. Entries are built from the rows after the forward (:meth:`finish_batch`).
Within a batch, the same tensor object seen again at the same version (an eval Dropout
returning its input, a wrapper returning its last submodule's output, a layer output
that is the next layer's input) is read once.
"""

from __future__ import annotations

import fnmatch
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from parity.records import native
from parity.records.budget import SizeBudget, header_entry_bytes
from parity.records.flatten import flatten, strip_wrapper_prefix, structure
from parity.records.stats import SAMPLE_SIZE, Summary, read_summary, sketch_seed, tensor_stats
from parity.records.writer import ShardWriter

_SCALARS = (type(None), bool, int, float, str)


class _Object:
    """A non-tensor, non-scalar output, kept by its type name only (never the object)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def layer_selector(patterns: Sequence[str]) -> Callable[[str], bool]:
    """``selected(module_path)`` for ``--layers`` glob patterns: a module is selected
    when its path, wrapper prefixes stripped (``_orig_mod.``, ``module.``), or the path
    of a module around it matches a pattern (``encoder.layer.3`` selects that block and
    everything inside it; ``*`` selects every module, the root included)."""
    pats = tuple(patterns)

    def selected(path: str) -> bool:
        parts = strip_wrapper_prefix(path).split(".") if path else []
        prefixes = [""] + [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(fnmatch.fnmatchcase(p, pat) for p in prefixes for pat in pats if p or pat in ("*", ""))

    return selected


def compiled(model: Any) -> bool:
    """Whether ``model`` or a module inside it runs through torch.compile
    (``torch.compile(m)``'s wrapper, or ``m.compile()`` in place)."""
    import torch

    wrapper = getattr(getattr(torch, "_dynamo", None), "eval_frame", None)
    optimized = getattr(wrapper, "OptimizedModule", None)
    return any((optimized is not None and isinstance(m, optimized))
               or getattr(m, "_compiled_call_impl", None) is not None for m in model.modules())


def _compiler_disable() -> Callable[[Any], Any]:
    import torch

    return torch.compiler.disable  # type: ignore[no-any-return]


def _same(fn: Any) -> Any:
    return fn


def _reset_compiled() -> None:
    """Drop every torch.compile cache of this process: the next call compiles again."""
    import torch._dynamo

    torch._dynamo.reset()


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
    and the module inputs); ``full`` (a :func:`layer_selector`) makes a stats capture
    store every tensor and the inputs of the selected modules only. ``entries`` and
    ``module_inputs`` hold blob names until :meth:`resolve` swaps them for shard
    locations once the writer is closed.
    """

    def __init__(self, model: Any, level: str, writer: ShardWriter, seed: int = 0,
                 sample_size: int = SAMPLE_SIZE, budget: SizeBudget | None = None,
                 full: Callable[[str], bool] | None = None) -> None:
        import torch

        self.model = model
        self.budget = budget  # charged before the writer gets a tensor: the record's size limit
        self.level = level
        self.writer = writer
        self.seed = seed
        self.sample_size = sample_size
        self.entries: list[dict[str, Any]] = []
        self.module_inputs: list[dict[str, Any]] = []
        self.batch = 0
        self._tensor_type = torch.Tensor
        self._full = level == "full"
        self._select = full if not self._full else None
        self._full_paths: set[str] = set()  # targeted capture: the selected modules
        self._compiled = False
        self._counts: dict[str, int] = {}
        self._open_calls: dict[str, list[int]] = {}
        self._rows: list[tuple[str, str, int, str, Any]] = []  # (module, type, call, out, Summary | value)
        self._seen: dict[int, tuple[Any, int, Summary]] = {}  # id(tensor) -> (weakref, version, summary)
        self._handles: list[Any] = []
        self._stored: dict[tuple[str | None, str, tuple[int, ...]], str] = {}  # content -> blob, whole record
        native.kernel()  # compiled or loaded now, not inside the first hook

    def __enter__(self) -> LayerCapture:
        # Under torch.compile, dynamo would trace into the hooks (numpy, weakrefs: it
        # fails); disabled for it, each hook is a graph break that runs eagerly. Code
        # compiled before the hooks existed would never call them (dynamo does not guard
        # on module hooks), nor forget them after: compiled code is dropped both times.
        self._compiled = compiled(self.model)
        opaque = _compiler_disable() if self._compiled else _same
        if self._compiled:
            _reset_compiled()
        for path, module in self.model.named_modules():
            kind = type(module).__name__
            if self._select is not None and self._select(path):
                self._full_paths.add(path)
            if self._full or path in self._full_paths:
                self._handles.append(module.register_forward_pre_hook(
                    opaque(partial(self._on_input, path)), with_kwargs=True))
            self._handles.append(module.register_forward_hook(opaque(partial(self._on_output, path, kind))))
        return self

    @property
    def selected(self) -> set[str]:
        """Targeted capture: the module paths stored in full (empty otherwise)."""
        return set(self._full_paths)

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._compiled:
            _reset_compiled()
        if exc[0] is None:
            self.finish_batch()

    def begin_batch(self, batch: int) -> None:
        """Finish the previous batch and start counting calls afresh for ``batch``."""
        self.finish_batch()
        self.batch = batch

    # -- hooks: as few operations as possible ----------------------------------------------
    def _on_input(self, path: str, module: Any, args: Any, kwargs: Any) -> None:
        call = self._counts.get(path, 0)
        self._counts[path] = call + 1
        self._open_calls.setdefault(path, []).append(call)
        key = f"{path}#{call}"
        if not kwargs and len(args) == 1 and type(args[0]) is self._tensor_type:  # most calls: one tensor
            stored = {"tuple": [{"tensor": self._store_input(key, "/args", "/0", args[0])}]}
            self.module_inputs.append({"key": key, "module": path, "call": call, "batch": self.batch,
                                       "args": stored, "kwargs": {"dict": {}, "class": "dict"}})
            return
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
            call = self._counts.get(path, 0)
            self._counts[path] = call + 1
        if type(output) is self._tensor_type:  # the common case, without walking a structure
            self._rows.append((path, kind, call, "/out", self._read(output, path, call, "/out")))
            return
        for out, value in flatten(output, "/out"):
            if isinstance(value, self._tensor_type):
                value = self._read(value, path, call, out)
            elif not isinstance(value, _SCALARS):
                value = _Object(type(value).__name__)  # the type only: the object may hold tensors
            self._rows.append((path, kind, call, out, value))

    def _read(self, t: Any, path: str, call: int, out: str) -> Summary:
        """The summary of ``t``: read now, or the one already read for this object at this version."""
        version = _version(t)
        full = self._full or path in self._full_paths
        summary = self._already_read(t, version)
        if summary is not None and (summary.blob is not None or not full):
            if summary.stats is None and t.numel():
                summary.stats = tensor_stats(t)  # first seen as a module input, which keeps no stats
            return summary
        if full:
            summary = self._store_full(f"{path}#{call}{out}", t)
        else:
            summary = read_summary(t, True, self.seed, self.sample_size, sketch_seed(path, call, out))
        self._seen[id(t)] = (weakref.ref(t), version, summary)
        return summary

    def _store_full(self, key: str, t: Any, with_stats: bool = True) -> Summary:
        """Summarise ``t`` and copy it to the writer, unless the same content (hash,
        dtype, shape) is already stored anywhere in this record."""
        if t.is_sparse or t.is_quantized:
            return Summary(t.shape, t.dtype, None, None, digest=None, tail=None)
        summary = read_summary(t, with_stats, None)
        content = (summary.hash, str(t.dtype), tuple(t.shape))
        blob = self._stored.get(content)
        if blob is None:
            blob = self._stored[content] = f"{self.batch}/{key}"
            if self.budget is not None:
                self.budget.charge_layer_tensor(t.numel() * t.element_size(), header_entry_bytes(blob, t.dim()))
            # The writer copies the values now: later in-place ops (ReLU(inplace=True))
            # cannot reach the record.
            self.writer.put(blob, t)
        summary.blob = blob
        return summary

    def _store_input(self, key: str, where: str, path: str, t: Any) -> str | None:
        version = _version(t)
        seen = self._already_read(t, version)
        if seen is not None and seen.blob:
            return seen.blob
        summary = self._store_full(f"{key}/in{where}{path}", t, with_stats=False)
        if summary.blob is not None:
            self._seen[id(t)] = (weakref.ref(t), version, summary)
        return summary.blob

    def _already_read(self, t: Any, version: int) -> Summary | None:
        """The summary read for this very tensor object at this version in this batch."""
        seen = self._seen.get(id(t))
        if seen is not None and seen[1] == version >= 0 and seen[0]() is t:
            return seen[2]
        return None

    # -- after the forward -------------------------------------------------------------------
    def finish_batch(self) -> None:
        """Turn the batch's rows into entries; hand its samples to the writer in one go."""
        import torch

        samples: list[tuple[str, Any]] = []
        for path, kind, call, out, value in self._rows:
            key = f"{path}#{call}{out}"
            entry: dict[str, Any] = {"key": key, "module": path, "call": call, "out": out, "batch": self.batch}
            if isinstance(value, Summary):
                if value.blob is None and value.sample is not None:
                    value.blob = f"{self.batch}/{key}/sample"
                    sample = value.sample
                    samples.append((value.blob, sample if isinstance(sample, torch.Tensor) else torch.from_numpy(sample)))
                entry.update(type=kind, kind="tensor", shape=list(value.shape),
                             dtype=str(value.dtype).removeprefix("torch."), stats=value.stats, hash=value.hash,
                             blob=value.blob)
                if value.sketch is not None:  # stats capture: the layer's linear sketch
                    entry["sketch"] = value.sketch
            else:
                entry.update(type=kind, kind=value.name if isinstance(value, _Object) else type(value).__name__,
                             shape=None, dtype=None, stats=None, hash=None)
                if isinstance(value, _SCALARS):
                    entry["value"] = value
            self.entries.append(entry)
        if samples:
            if self.budget is not None:
                for name, sample in samples:
                    self.budget.charge_layer_tensor(sample.numel() * sample.element_size(),
                                                    header_entry_bytes(name, sample.dim()))
            self.writer.put_many(samples)
        self._rows.clear()
        self._seen.clear()
        self._counts.clear()
        self._open_calls.clear()

    # -- after the writer is closed ------------------------------------------------------
    def resolve(self) -> None:
        """Replace blob names by shard/tensor locations."""
        for entry in self.entries:
            blob = entry.pop("blob", None)
            shard, tensor = self.writer.location(blob) if blob else (None, None)
            entry["shard"], entry["tensor"] = shard, tensor
        for call in self.module_inputs:
            call["args"] = _resolve_node(call["args"], self.writer)
            call["kwargs"] = _resolve_node(call["kwargs"], self.writer)


def _version(t: Any) -> int:
    """The tensor's version counter; -1 for inference tensors, which keep none (never seen twice)."""
    try:
        return t._version  # type: ignore[no-any-return]
    except RuntimeError:
        return -1


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
            return {**node, container: [_resolve_node(v, writer) for v in node[container]]}
    return node
