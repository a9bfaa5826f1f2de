"""Which environment differences plausibly explain a slower stage.

The environment diff already ranks differences by risk and tags each with the
pipeline stages it can touch (``Difference.stages``, from ``env/risk.py``). Here the
differences that touch a stage that got slower move to the front; risk order is kept
inside each group. Attribution is a ranked list of suspects, not a proof: ``bisect``
is the tool that proves which package change is responsible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from parity.env.risk import level_rank


def env_differences(baseline_env: dict[str, Any] | None, current_env: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """``parity.env.differences`` items (baseline = a, current = b) as JSON dicts.

    None when either side has no embedded snapshot, so nothing can be attributed.
    """
    if not baseline_env or not current_env:
        return None
    from parity.env.differences import diff

    items: list[dict[str, Any]] = diff(baseline_env, current_env).to_json()["items"]
    return items


def rank_differences(differences: Iterable[dict[str, Any]], slower_stages: Sequence[str]) -> list[dict[str, Any]]:
    """Differences touching a slower stage first, then by risk, stable otherwise.

    Each returned item is a copy with ``touches_slower_stage``: the slower stages it
    plausibly touches (empty list when none).
    """
    slower = list(slower_stages)
    ranked = []
    for position, item in enumerate(differences):
        touched = [s for s in slower if s in (item.get("stages") or ())]
        key = (0 if touched else 1, level_rank(str(item.get("risk"))), position)
        ranked.append((key, {**item, "touches_slower_stage": touched}))
    ranked.sort(key=lambda pair: pair[0])
    return [item for _, item in ranked]


def attribute(baseline_env: dict[str, Any] | None, current_env: dict[str, Any] | None,
              slower_stages: Sequence[str]) -> list[dict[str, Any]] | None:
    """Ranked environment differences for the slower stages (None: no snapshot to diff)."""
    items = env_differences(baseline_env, current_env)
    return None if items is None else rank_differences(items, slower_stages)
