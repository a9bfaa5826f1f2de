"""How a model's inputs and outputs cross into an artifact, and the metadata that says so.

An artifact is called without the model's Python code, so it carries a small JSON
document (``parity.artifact/1``) naming its inputs in order, how the eager model was
called (keywords, positional or a single tensor), its flattened outputs and a copy of the
example model inputs (safetensors, base64) so that ``parity record ARTIFACT`` works
without ``--inputs``. Every format stores the same document: TorchScript in
``_extra_files``, ``.pt2`` in extra files or AOTInductor metadata, ONNX in
``metadata_props``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from parity._version import __version__
from parity.errors import ExportError, TargetError
from parity.target.pipeline import call_model

SCHEMA = "parity.artifact/1"
#: key under which every format stores the metadata document
META_KEY = "parity.json"
#: example inputs larger than this are not embedded (record then needs --inputs)
MAX_EMBEDDED_EXAMPLE_BYTES = 4 << 20

CALL_KWARGS, CALL_ARGS, CALL_SINGLE = "kwargs", "args", "single"


@dataclass
class ArtifactMeta:
    """What a loader needs to feed an artifact and name its outputs."""

    format: str
    input_names: list[str]
    call: str
    output_names: list[str]
    single_output: bool
    dynamic: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str | None = None
    method: str | None = None
    torch_version: str | None = None
    example_b64: str | None = None
    schema: str = SCHEMA
    parity_version: str = __version__

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str | bytes, where: str) -> ArtifactMeta:
        """Parse the stored document; ``where`` names the artifact for the error message."""
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r}")
            known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
            return cls(**known)
        except (ValueError, TypeError, AttributeError) as exc:
            raise TargetError(f"{where}: its parity metadata is unreadable ({exc})",
                              fix="re-export the model with `parity export`") from None

    def example_inputs(self) -> dict[str, Any] | None:
        """The embedded example model inputs as a dict of tensors (None if not stored)."""
        if not self.example_b64:
            return None
        from safetensors.torch import load

        tensors = load(base64.b64decode(self.example_b64))
        return {name: tensors[name] for name in self.input_names if name in tensors}


def split_inputs(model_inputs: Any) -> tuple[list[str], list[Any], str]:
    """(names, tensors, call style) of what preprocess produced for the model.

    A mapping is passed by keyword, a tuple/list positionally, a tensor alone.
    Anything else cannot cross into an artifact and raises :class:`ExportError`.
    """
    import torch

    if isinstance(model_inputs, torch.Tensor):
        return ["input"], [model_inputs], CALL_SINGLE
    if isinstance(model_inputs, Mapping):
        names, values, call = [str(k) for k in model_inputs], list(model_inputs.values()), CALL_KWARGS
    elif isinstance(model_inputs, (tuple, list)):
        names = [f"input_{i}" for i in range(len(model_inputs))]
        values, call = list(model_inputs), CALL_ARGS
    else:
        raise ExportError(f"the model input is a {type(model_inputs).__name__}; artifacts take tensors only",
                          fix="make preprocess return a tensor, a tuple of tensors or a dict of tensors")
    for name, value in zip(names, values):
        if not isinstance(value, torch.Tensor):
            raise ExportError(f"model input {name!r} is a {type(value).__name__}; artifacts take tensors only",
                              fix="make preprocess return only tensors (bake constants into the model)")
    return names, values, call


def join_inputs(names: Sequence[str], tensors: Sequence[Any], call: str) -> Any:
    """Inverse of :func:`split_inputs`: the structure the eager model is called with."""
    if call == CALL_SINGLE:
        return tensors[0]
    if call == CALL_ARGS:
        return tuple(tensors)
    return dict(zip(names, tensors))


def flatten_outputs(out: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, tensor) pairs of a nested model output, in a stable order.

    A tensor alone is ``output``; mappings (dicts, Hugging Face ``ModelOutput``) use their
    keys, sequences their positions, joined with dots. ``None`` entries are skipped.
    """
    import torch

    if isinstance(out, torch.Tensor):
        return [(prefix or "output", out)]
    if isinstance(out, Mapping) or hasattr(out, "to_tuple"):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in out.items()]
    elif isinstance(out, (tuple, list)):
        items = [(str(i), v) for i, v in enumerate(out)]
    elif out is None:
        return []
    else:
        raise ExportError(f"the model returns a {type(out).__name__}{' at ' + prefix if prefix else ''}; "
                          "artifacts return tensors only",
                          fix="return tensors, or tuples/dicts of tensors, from forward()")
    flat: list[tuple[str, Any]] = []
    for key, value in items:
        flat.extend(flatten_outputs(value, f"{prefix}.{key}" if prefix else key))
    return flat


def positional_module(model: Any, names: Sequence[str], call: str) -> Any:
    """A ``torch.nn.Module`` taking the inputs positionally and returning a flat tuple.

    Tracing and ``torch.export`` see one fixed signature whatever the user's forward
    looks like; the user's model sits under the attribute ``model``.
    """
    import torch

    class PositionalModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> tuple[Any, ...]:
            out = call_model(self.model, join_inputs(names, args, call))
            return tuple(t for _, t in flatten_outputs(out))

    return PositionalModel().eval()



def encode_example(names: Sequence[str], tensors: Sequence[Any]) -> str | None:
    """Base64 safetensors of the example inputs, or None when too large to embed."""
    from safetensors.torch import save

    data = save({n: t.detach().cpu().contiguous() for n, t in zip(names, tensors)})
    if len(data) > MAX_EMBEDDED_EXAMPLE_BYTES:
        return None
    return base64.b64encode(data).decode("ascii")
