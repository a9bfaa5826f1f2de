"""Helpers for capture tests: record a small model quickly (no environment snapshot)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from parity.records import read_record, record
from parity.records.format import Record
from parity.target import Pipeline


@pytest.fixture
def record_model(tmp_path: Path) -> Callable[..., Record]:
    """record_model(model, inputs, capture=..., **kw) -> the validated Record."""
    counter = iter(range(1000))

    def _record(model: Any, inputs: list[Any] | None = None, capture: str = "stats", **kw: Any) -> Record:
        if inputs is None:
            inputs = [torch.randn(8) for _ in range(4)]
        pipe = model if isinstance(model, Pipeline) else Pipeline(model=model, batch_size=kw.pop("batch_size", 2))
        out = tmp_path / f"rec{next(counter)}"
        record(pipe, inputs=inputs, out=out, capture=capture, snapshot_env=False, **kw)
        return read_record(out)

    return _record
