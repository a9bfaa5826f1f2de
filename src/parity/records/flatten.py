"""Nested values (tuples, lists, dicts, dataclasses, ModelOutput) <-> flat paths.

A path is "/"-joined positions: ``/0``, ``/last_hidden_state``, ``/hidden_states/2``.
The structure written next to stored tensors is plain JSON:
``{"tensor": name}``, ``{"dict": {k: node}, "class": str}``, ``{"list": [...]}``,
``{"tuple": [...]}``, ``{"value": v}`` for JSON scalars, ``{"object": type name}``
for anything else (recorded by type only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

#: wrappers that change a module path without changing the model
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SCALARS = (type(None), bool, int, float, str)
_MAX_DEPTH = 16


def strip_wrapper_prefix(key: str) -> str:
    """A layer key or module path without ``module.`` (DataParallel/DDP) and
    ``_orig_mod.`` (torch.compile) segments, so A and B match across wrappers."""
    module, sep, rest = key.partition("#")
    parts = module.split(".")
    while parts and parts[0] in ("module", "_orig_mod"):  # DDP/DataParallel wrap from outside
        parts.pop(0)
    # torch.compile may wrap any submodule; a user's own submodule may be called "module".
    return ".".join(p for p in parts if p != "_orig_mod") + sep + rest


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _children(value: Any) -> list[tuple[str, Any]] | None:
    """(name, child) pairs of a container, or None for a leaf."""
    if isinstance(value, Mapping):  # dict, OrderedDict, transformers ModelOutput
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    return None


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of ``value`` in order as (path, leaf); containers are walked, tensors and
    every other object are leaves. Empty containers yield nothing."""
    yield from _flatten(value, prefix, 0)


def _flatten(value: Any, path: str, depth: int) -> Iterator[tuple[str, Any]]:
    if _is_tensor(value) or depth >= _MAX_DEPTH:
        yield path, value
        return
    children = _children(value)
    if children is None:
        yield path, value
        return
    for name, child in children:
        yield from _flatten(child, f"{path}/{name}", depth + 1)


def structure(value: Any, on_tensor: Callable[[str, Any], Any], path: str = "") -> Any:
    """The JSON structure of ``value``; ``on_tensor(path, tensor)`` returns what the
    ``{"tensor": ...}`` node holds (a stored tensor name)."""
    if _is_tensor(value):
        return {"tensor": on_tensor(path, value)}
    if isinstance(value, _SCALARS):
        return {"value": value if not isinstance(value, float) or value == value else None}
    if isinstance(value, Mapping):
        node = {k: structure(v, on_tensor, f"{path}/{k}") for k, v in ((str(k), v) for k, v in value.items())}
        return {"dict": node, "class": type(value).__name__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        node = {f.name: structure(getattr(value, f.name), on_tensor, f"{path}/{f.name}")
                for f in dataclasses.fields(value)}
        return {"dict": node, "class": type(value).__name__}
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [structure(v, on_tensor, f"{path}/{i}") for i, v in enumerate(value)]}
    return {"object": type(value).__name__}


def rebuild(node: Any, load_tensor: Callable[[Any], Any]) -> Any:
    """The value a structure describes. Dicts, dataclasses and ModelOutputs come back as
    plain dicts. Raises ValueError naming the first part recorded by type only."""
    if "tensor" in node:
        return load_tensor(node["tensor"])
    if "value" in node:
        return node["value"]
    if "dict" in node:
        return {k: rebuild(v, load_tensor) for k, v in node["dict"].items()}
    if "tuple" in node:
        return tuple(rebuild(v, load_tensor) for v in node["tuple"])
    if "list" in node:
        return [rebuild(v, load_tensor) for v in node["list"]]
    raise ValueError(f"a {node.get('object', 'value')} was recorded by type only")
