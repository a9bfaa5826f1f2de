"""Helpers of the watch tests."""

from __future__ import annotations

from typing import Any


def metric_lines(registry: Any) -> dict[str, float]:
    from prometheus_client import generate_latest

    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("parity_watch_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
