"""What parity knows about one artifact format: the record the registry holds.

Everything that depends on the format (which suffixes, how to tell two formats that
share a suffix apart, how to load and write the file, how loose the parity check is)
is a field here, so no other module tests a format's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parity.target.formats.job import ExportJob, Finding


@dataclass(frozen=True)
class ArtifactFormat:
    """One artifact format.

    ``name``: the ``--format`` value and ``LoadedTarget.kind``. ``suffixes``: lower-case
    file suffixes with the dot; the first is the one suggested for new files.
    ``title``: the format in messages ("TorchScript"). ``note``: what else ``--format``
    help says (e.g. "needs a C++ compiler").

    ``load(path) -> (runner, metadata text)``: the runner takes positional tensors;
    the text is the stored ``parity.artifact/1`` document, "" when there is none. It
    raises :class:`~parity.errors.TargetError` for what the user can fix; anything else
    is reported as "cannot be loaded as NAME".
    ``export(job) -> (bytes, findings)``: the artifact of an
    :class:`~parity.target.formats.job.ExportJob`, with the metadata stored inside.
    ``recognise(path) -> bool``: for a format sharing a suffix with another, whether this
    file is one of its own (must not raise); None: the suffix alone decides.
    ``require()``: raises :class:`~parity.errors.ExportError` when this machine lacks the
    format's toolchain, before any model is loaded.

    The parity check reads ``tolerance_scale`` (float tolerances are multiplied by it:
    the format runs its own kernels), ``named_weights`` (the artifact keeps the eager
    weights under their names, so records hash them) and ``named_submodules`` (its
    submodules keep their names and can be replayed one by one). ``methods``: the
    ``--method`` values it understands (empty: ``--method`` does not apply).
    """

    name: str
    suffixes: tuple[str, ...]
    title: str
    load: Callable[[str], tuple[Any, str]]
    export: Callable[[ExportJob], tuple[bytes, list[Finding]]]
    recognise: Callable[[Path], bool] | None = None
    require: Callable[[], object] | None = None
    note: str = ""
    tolerance_scale: float = 1.0
    named_weights: bool = False
    named_submodules: bool = False
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"artifact format name {self.name!r} must be an identifier")
        if not self.suffixes or any(not s.startswith(".") or s != s.lower() for s in self.suffixes):
            raise ValueError(f"artifact format {self.name}: suffixes {self.suffixes!r} must be lower case, "
                             "start with '.', and there must be at least one")
        if self.tolerance_scale <= 0:
            raise ValueError(f"artifact format {self.name}: tolerance_scale must be > 0")

    def help(self) -> str:
        """``name (suffix, note)``, as ``--format`` help lists it."""
        return f"{self.name} ({', '.join(filter(None, (self.suffixes[0], self.note)))})"
