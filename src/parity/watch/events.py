"""What the watch tells people: JSON log lines (logger ``parity.watch``) and alarms.

Every line is one JSON object (``{"event": ..., "watch": ..., "time": ...}``), passed
also as ``extra={"parity": {...}}`` for handlers that format records themselves. parity
adds no handler: the application's logging configuration decides where lines go.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOGGER = logging.getLogger("parity.watch")
LOGGER.addHandler(logging.NullHandler())  # a library: no "last resort" lines on stderr


def log(level: int, event: str, watch: str, **fields: Any) -> dict[str, Any]:
    """Log one JSON line (non-finite numbers as null); returns the payload."""
    payload = {"event": event, "watch": watch, "time": _now(), **fields}
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, json.dumps(_finite(payload), sort_keys=True, default=str), extra={"parity": payload})
    return payload


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Alarm:
    """What ``on_alarm`` receives.

    ``kind``: ``canary`` (a canary failed, or its probable cause changed), ``error`` (the
    canary could not run), ``resolved`` (a canary passed after a failure) or ``drift``
    (a layer's drift score reached ``drift_alarm``; off unless asked for).
    """

    kind: str
    watch: str
    verdict: str | None
    reason: str
    probable_cause: dict[str, Any] | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None  # the canary's VerifyResult, when there is one
    time: str = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "watch": self.watch, "verdict": self.verdict, "reason": self.reason,
                "probable_cause": self.probable_cause, "layers": list(self.layers), "time": self.time}


def raise_alarm(callback: Callable[[Alarm], Any] | None, alarm: Alarm) -> None:
    """Log the alarm and call ``callback``; an exception in the callback is logged, never
    raised into the server."""
    log(logging.ERROR if alarm.kind in ("canary", "error") else logging.WARNING, "alarm", alarm.watch,
        **{k: v for k, v in alarm.to_json().items() if k not in ("watch", "time")})
    if callback is None:
        return
    try:
        callback(alarm)
    except Exception as exc:  # the callback is the user's code: report, never break serving
        log(logging.ERROR, "alarm-callback-failed", alarm.watch, error=f"{type(exc).__name__}: {exc}")
