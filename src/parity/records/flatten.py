"""Nested values (tuples, lists, dicts, dataclasses, ModelOutput) <-> flat paths.

A path is "/"-joined positions: ``/0``, ``/last_hidden_state``, ``/hidden_states/2``.
The structure written next to stored tensors is plain JSON:
``{"tensor": name}``, ``{"dict": {k: node}, "class": str}``, ``{"list": [...]}``,
``{"tuple": [...]}``, ``{"value": v}`` for JSON scalars, ``{"object": type name}``
for anything else (recorded by type only).

A KV cache (an instance of a class of ``transformers.cache_utils`` or a subclass:
``DynamicCache``, ``StaticCache``, ``EncoderDecoderCache``...) is walked like a dataclass
through its public attributes that hold tensors, caches or lists of them
(``/past_key_values/layers/0/keys``): a record holds its keys and values, and the
structure names the class (``"class": "DynamicCache"``). Only the live object on the
recording side is read. :func:`rebuild` gives a plain dict back, except for a node of
class ``DynamicCache`` holding only ``layers`` of ``keys``/``values`` tensors, which it
rebuilds as a ``transformers.cache_utils.DynamicCache`` (an allow-list of one, as for
named tuples) so a decoder layer can be replayed on A's cache.

A named tuple (``PackedSequence``, ``torch.return_types.max``, a ``NamedTuple`` class)
adds ``"namedtuple": {"type": "<module>.<qualname>", "fields": [names]}`` to its tuple
node. The type travels as data: :func:`rebuild` imports nothing a record names; it
rebuilds only the types of :func:`namedtuple_class`'s allow-list, and any other named
tuple as a ``collections.namedtuple`` with the recorded fields.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import keyword
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


#: modules whose classes (and their subclasses) are KV caches, walked by their tensor attributes
CACHE_MODULES = ("transformers.cache_utils",)


def _is_cache(value: Any) -> bool:
    return not isinstance(value, type) and any(
        getattr(c, "__module__", None) in CACHE_MODULES for c in type(value).__mro__)


def _cache_fields(value: Any) -> list[tuple[str, Any]] | None:
    """A KV cache's public attributes that hold tensors, caches or lists of them (in the
    order the object set them); None when ``value`` is not a cache."""
    if not _is_cache(value):
        return None
    try:
        attrs = vars(value)
    except TypeError:  # __slots__: nothing to walk
        return []

    def holds(v: Any) -> bool:
        if _is_tensor(v) or _is_cache(v):
            return True
        return isinstance(v, (list, tuple)) and bool(v) and all(_is_tensor(x) or _is_cache(x) for x in v)

    return [(str(k), v) for k, v in attrs.items() if not str(k).startswith("_") and holds(v)]


def _children(value: Any) -> list[tuple[str, Any]] | None:
    """(name, child) pairs of a container, or None for a leaf."""
    if isinstance(value, Mapping):  # dict, OrderedDict, transformers ModelOutput
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    return _cache_fields(value)


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
        seq: dict[str, Any] = {kind: [structure(v, on_tensor, f"{path}/{i}") for i, v in enumerate(value)]}
        named = _named_type(type(value)) if kind == "tuple" and type(value) is not tuple else None
        if named is not None:
            seq["namedtuple"] = named
        return seq
    fields = _cache_fields(value)
    if fields is not None:
        return {"dict": {k: structure(v, on_tensor, f"{path}/{k}") for k, v in fields}, "class": type(value).__name__}
    return {"object": type(value).__name__}


def _named_type(cls: type) -> dict[str, Any] | None:
    """``{"type", "fields"}`` of a named tuple or torch structseq class, else None."""
    fields = getattr(cls, "_fields", None)  # collections.namedtuple / typing.NamedTuple
    if fields is None and cls.__module__ == "torch.return_types":  # structseq: fields by position
        fields = getattr(cls, "__match_args__", ())
    if not isinstance(fields, tuple) or not all(isinstance(f, str) for f in fields):
        return None
    return {"type": f"{cls.__module__}.{cls.__qualname__}", "fields": list(fields)}


def rebuild(node: Any, load_tensor: Callable[[Any], Any]) -> Any:
    """The value a structure describes. Dicts, dataclasses and ModelOutputs come back as
    plain dicts. Raises ValueError naming the first part recorded by type only."""
    if "tensor" in node:
        return load_tensor(node["tensor"])
    if "value" in node:
        return node["value"]
    if "dict" in node:
        fields = {k: rebuild(v, load_tensor) for k, v in node["dict"].items()}
        return _dynamic_cache(fields) if node.get("class") == "DynamicCache" else fields
    if "tuple" in node:
        items = tuple(rebuild(v, load_tensor) for v in node["tuple"])
        named = node.get("namedtuple")
        return items if named is None else namedtuple_class(named, len(items))(*items)
    if "list" in node:
        return [rebuild(v, load_tensor) for v in node["list"]]
    raise ValueError(f"a {node.get('object', 'value')} was recorded by type only")


def _dynamic_cache(items: dict[str, Any]) -> Any:
    """A DynamicCache from ``{"layers": [{"keys": t, "values": t} | {}, ...]}``; ``items``
    unchanged when it holds anything else or transformers is not installed."""
    layers = items.get("layers")
    if set(items) != {"layers"} or not isinstance(layers, list) or not all(
            isinstance(x, dict) and set(x) <= {"keys", "values"} for x in layers):
        return items
    try:
        from transformers.cache_utils import DynamicCache
    except ImportError:
        return items
    return DynamicCache([(x.get("keys"), x.get("values")) for x in layers])


#: named tuple types a record may ask for by name: nothing else is ever imported
_ALLOWED_TYPES = ("torch.nn.utils.rnn.PackedSequence",)
_ALLOWED_MODULES = ("torch.return_types",)


def namedtuple_class(info: Any, size: int) -> Callable[..., Any]:
    """A callable ``(*items) -> named tuple`` for a node's ``"namedtuple"`` data.

    Allow-listed types (``PackedSequence``, ``torch.return_types.*``) are the real
    classes; any other is a ``collections.namedtuple`` with the recorded name and fields
    (no import). Raises ValueError for malformed data or a field count not ``size``.
    """
    if not isinstance(info, Mapping) or not isinstance(info.get("type"), str) or not isinstance(
            info.get("fields"), list) or not all(isinstance(f, str) for f in info["fields"]):
        raise ValueError("a named tuple's type must be {\"type\": str, \"fields\": [str]}")
    path, fields = info["type"], tuple(info["fields"])
    module, _, name = path.rpartition(".")
    if path in _ALLOWED_TYPES or module in _ALLOWED_MODULES:
        cls = _allowed_class(module, name)
        expected = len(cls._fields) if hasattr(cls, "_fields") else int(cls.n_fields)
        if size != expected:
            raise ValueError(f"{path} takes {expected} fields, not {size}")
        return cls if hasattr(cls, "_fields") else lambda *items: cls(items)
    if len(fields) != size:
        raise ValueError(f"named tuple {path!r} lists {len(fields)} fields for {size} values")
    return _plain_namedtuple(name, fields)


def _allowed_class(module: str, name: str) -> Any:
    if module == "torch.nn.utils.rnn":
        from torch.nn.utils.rnn import PackedSequence

        return PackedSequence
    import torch.return_types

    cls = getattr(torch.return_types, name, None) if name.isidentifier() and not name.startswith("_") else None
    if not (isinstance(cls, type) and issubclass(cls, tuple)):
        raise ValueError(f"torch.return_types has no {name!r}")
    return cls


@functools.lru_cache(maxsize=256)
def _plain_namedtuple(name: str, fields: tuple[str, ...]) -> Any:
    for part in (name, *fields):
        if not part.isidentifier() or keyword.iskeyword(part) or (part is not name and part.startswith("_")):
            raise ValueError(f"named tuple field or name {part!r} is not a valid identifier")
    if len(set(fields)) != len(fields):
        raise ValueError(f"named tuple {name!r} repeats a field")
    return collections.namedtuple(name, fields)  # type: ignore[misc]
