"""The terminal report of ``parity record`` (``RecordResult.to_json()``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parity.report import _format as fmt
from parity.report.terminal._markup import group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType


def record_report(doc: Mapping[str, Any]) -> RenderableType:
    """What was recorded where: inputs, batches, layer keys, files, size, time, warnings."""
    inputs = doc.get("inputs") or {}
    lines = [
        f"recorded {doc.get('target') or 'pipeline'} -> {doc.get('path')}",
        f"  capture {doc.get('capture')}: {inputs.get('count')} inputs in {doc.get('batches')} batches, "
        f"{doc.get('layers')} layer keys, {doc.get('files')} files, {fmt.size(doc.get('bytes'))}, "
        f"{fmt.seconds(doc.get('seconds'))}",
    ]
    if doc.get("full_layers"):  # --layers: which modules hold full tensors and replay inputs
        lines.append(f"  full tensors and replay inputs for {doc.get('full_modules')} module(s) selected by "
                     f"--layers {' '.join(str(p) for p in doc['full_layers'])}; stats elsewhere")
    lines += [f"  warning: {w}" for w in doc.get("warnings") or ()]
    return group(plain(line) for line in lines)
