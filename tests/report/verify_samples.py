"""Hand-made verify results of the documented shape (docs/architecture.md, parity.verify/1).

The HTML renderer is tested against these, independent of the compare package, and
benchmarks/html_report.py renders the 2,000-layer one.
"""

from __future__ import annotations

import math
from typing import Any

HOSTILE = "<script>alert('x')</script><!--</script>"
HOSTILE_ATTR = "\"' onmouseover=alert(1) x='"


def _layer(i: int, err: float, atol: float, *, name: str | None = None) -> dict[str, Any]:
    diverged = err > atol
    return {
        "key": name or f"encoder.layer.{i // 4}.op{i % 4}#0/out",
        "module": f"encoder.layer.{i // 4}.op{i % 4}",
        "type": ["Linear", "GELU", "LayerNorm", "Dropout"][i % 4],
        "shape": [2, 16, 64],
        "dtype": "float32",
        "status": "diverged" if diverged else "match",
        "metrics": {"max_abs": err, "mean_abs": err / 3, "rel_l2": err / 10, "cosine": 1 - err, "mismatch_frac": 0.5 if diverged else 0.0},
        "atol": atol,
        "rtol": 1e-4,
        "noise_floor": 1e-8,
        "introduced": None,
    }


def verify_result(n_layers: int = 40, *, diverge_at: int | None = 25, hostile: bool = False) -> dict[str, Any]:
    """A FAIL (or PASS when ``diverge_at`` is None) result with ``n_layers`` layers.

    Before ``diverge_at`` errors sit at float noise (one exact zero included); from it
    on they grow. With ``hostile`` every user-controlled string carries markup.
    """
    atol = 1e-5
    if diverge_at is not None:
        diverge_at = min(diverge_at, n_layers - 1)
    layers = []
    for i in range(n_layers):
        err = 0.0 if i == 0 else 1e-8 * (1 + (i % 7))
        if diverge_at is not None and i >= diverge_at:
            err = 1e-3 * math.exp((i - diverge_at) / max(1, n_layers / 10))
        layers.append(_layer(i, err, atol))
    first = layers[diverge_at]["key"] if diverge_at is not None else None
    if diverge_at is not None:
        layers[diverge_at]["introduced"] = True
        if diverge_at + 1 < n_layers:
            layers[diverge_at + 1]["introduced"] = False
    if hostile:
        layers[1]["key"] = f"{HOSTILE}#0/out"
        layers[1]["type"] = HOSTILE_ATTR
        if diverge_at is not None:
            layers[diverge_at]["key"] = first = f"evil.{HOSTILE}#0/out"
    name = HOSTILE if hostile else "numpy"
    fail = diverge_at is not None
    return {
        "schema": "parity.verify/1",
        "verdict": "FAIL" if fail else "PASS",
        "reason": ("Layer outputs diverge from the reference." if fail else "Every stage and layer matches within tolerance."),
        "a": {"record": f"/data/{HOSTILE if hostile else 'golden'}", "target": "model.py:build"},
        "b": {"record": None, "target": "model.py:build"},
        "env_diff": {
            "identical": False,
            "items": [
                # ranked by risk, as EnvDiff.to_json() gives them (the report keeps that order)
                {"category": "package", "name": name, "a": "1.26.4", "b": "2.0.0", "change": "changed", "risk": "high",
                 "reason": f"numerics {HOSTILE_ATTR if hostile else 'backend'}", "stages": ["model"]},
                {"category": "package", "name": "tokenizers", "a": "0.19.1", "b": "0.20.0", "change": "changed", "risk": "medium",
                 "reason": "tokenizer release", "stages": ["preprocess"]},
            ],
        },
        "assets": {
            "files": [{"path": f"assets/{HOSTILE if hostile else 'vocab.txt'}", "a": "ab" * 32, "b": "cd" * 32, "change": "changed"}],
            "params": [{"name": "encoder.layer.6.op0.weight", "max_abs": 0.01, "a_hash": "11" * 16, "b_hash": "22" * 16}] if fail else [],
        },
        "runtime": [{"severity": "error", "code": "training-mode", "message": f"dropout {HOSTILE if hostile else 'Dropout'} is in training mode", "where": "encoder.layer.2.op3"}] if fail else [],
        "stages": [
            {"stage": "inputs", "status": "match", "metrics": {}, "rows": []},
            {"stage": "preprocess", "status": "match", "metrics": {"max_abs": 0}, "rows": []},
            {"stage": "model", "status": "diverged" if fail else "match", "metrics": {"max_abs": 0.2, "rel_l2": 0.01, "cosine": 0.999}, "rows": []},
            {"stage": "postprocess", "status": "diverged" if fail else "match", "metrics": {"max_abs": 0.1}, "rows": []},
        ],
        "first_divergent_stage": "model" if fail else None,
        "layers": layers,
        "first_divergent_layer": first,
        "first_introducing_layer": first,
        "only_a": [],
        "only_b": [],
        "predictions": {"kind": "logits", "argmax_agreement": 0.75 if fail else 1.0, "topk_overlap": 0.9, "cosine": 0.999, "max_abs": 0.2, "mean_abs": 0.01, "rel_l2": 0.01},
        "performance": None,
        "tolerances": {"atol": atol, "rtol": 1e-4, "overrides": {}},
    }


def token_rows_result() -> dict[str, Any]:
    """A FAIL at preprocess: token ids differ, rows side by side."""
    r = verify_result(8, diverge_at=None)
    r["verdict"] = "FAIL"
    r["reason"] = "The tokenizer produces different token ids."
    r["first_divergent_stage"] = "preprocess"
    r["stages"][1] = {
        "stage": "preprocess",
        "status": "diverged",
        "metrics": {"mismatch_frac": 0.25},
        "rows": [{"index": 0, "input": "Hello World", "a": [101, 7592, 2088, 102], "b": [101, 1, 2088, 102]}],
    }
    return r
