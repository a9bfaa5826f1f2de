"""The registry of artifact formats: the one place parity learns which formats exist.

Loading a TARGET, ``parity export --format``, the export's parity check and the rule
that records never choose an artifact to run all ask this registry. A format is one
module defining an :class:`ArtifactFormat` (suffixes, recogniser, load, export, check
settings) and one :func:`register` line below; a plugin or a test registers its own the
same way.

Formats sharing a suffix (``.pt2``: torch.export and AOTInductor) are told apart by
their ``recognise``; the one without a recogniser is the fallback for that suffix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from parity.target.formats import aoti, onnx, torch_export, torchscript
from parity.target.formats.base import ArtifactFormat

__all__ = ["ArtifactFormat", "FormatSuffixes", "all_formats", "describe_suffixes", "detect", "get",
           "is_artifact", "names", "register", "suffixes", "unregister"]

_REGISTRY: dict[str, ArtifactFormat] = {}


def register(fmt: ArtifactFormat) -> ArtifactFormat:
    """Add ``fmt``; its name must be new. Returns it, so a module can write
    ``FORMAT = register(ArtifactFormat(...))``."""
    if fmt.name in _REGISTRY:
        raise ValueError(f"artifact format {fmt.name!r} is already registered")
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    """Remove the format called ``name`` (tests, plugins that replace a format)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> ArtifactFormat:
    """The format called ``name``; KeyError when there is none (callers say so to the user)."""
    return _REGISTRY[name]


def all_formats() -> tuple[ArtifactFormat, ...]:
    """Every registered format, in registration order."""
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    """The ``--format`` values, in registration order."""
    return tuple(_REGISTRY)


def suffixes() -> tuple[str, ...]:
    """Every suffix some format claims, each once."""
    return tuple(dict.fromkeys(s for f in _REGISTRY.values() for s in f.suffixes))


def is_artifact(path: str | os.PathLike[str]) -> bool:
    """True when the file's suffix belongs to an artifact format (the file may not exist)."""
    return Path(path).suffix.lower() in suffixes()


def detect(path: str | os.PathLike[str]) -> ArtifactFormat | None:
    """The format of the file at ``path``, or None when no format claims its suffix.

    Formats with a recogniser are asked first, in registration order; then the first
    one without a recogniser. When every candidate has a recogniser and none says yes,
    the first candidate is returned: its loader says what is wrong with the file.
    """
    suffix = Path(path).suffix.lower()
    candidates = [f for f in _REGISTRY.values() if suffix in f.suffixes]
    for fmt in candidates:
        if fmt.recognise is not None and fmt.recognise(Path(path)):
            return fmt
    fallback = [f for f in candidates if f.recognise is None] or candidates
    return fallback[0] if fallback else None


def describe_suffixes() -> str:
    """``.pt/.ts (TorchScript), .pt2 (torch.export or AOTInductor) or .onnx (ONNX)``."""
    titles: dict[tuple[str, ...], list[str]] = {}
    for fmt in _REGISTRY.values():
        titles.setdefault(fmt.suffixes, []).append(fmt.title)
    parts = [f"{'/'.join(sfx)} ({' or '.join(t)})" for sfx, t in titles.items()]
    return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else "".join(parts)


class FormatSuffixes(Mapping[str, tuple[str, ...]]):
    """A live read-only view ``{format name: suffixes}`` of the registry."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return _REGISTRY[name].suffixes

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return repr(dict(self))


# The built-in formats: one line each. A new format is a module beside these and a line here.
register(torchscript.FORMAT)
register(torch_export.FORMAT)
register(aoti.FORMAT)
register(onnx.FORMAT)
