"""The verify/compare result (schema ``parity.verify/1``, see docs/architecture.md).

Each section is already plain JSON (lists of dicts) because three consumers read it:
the terminal renderer, the HTML report and ``--json``. The verdict is derived from the
sections by :func:`decide_verdict`, so a result can never claim PASS over a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parity.errors import EXIT_FINDING, EXIT_OK

SCHEMA = "parity.verify/1"
PASS, FAIL, WARN = "PASS", "FAIL", "PASS-with-warnings"


@dataclass
class VerifyResult:
    """Everything a verify or compare found, in the report's order (a-h)."""

    a: dict[str, Any]
    b: dict[str, Any]
    capture: str
    env_diff: dict[str, Any] = field(default_factory=lambda: {"identical": True, "items": []})
    assets: dict[str, Any] = field(default_factory=lambda: {"files": [], "params": []})
    runtime: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    first_divergent_stage: str | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    first_divergent_layer: str | None = None
    first_introducing_layer: str | None = None
    error_growth: list[dict[str, Any]] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    predictions: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    api_changes: list[dict[str, Any]] = field(default_factory=list)
    probable_cause: dict[str, Any] | None = None
    #: After a stats divergence: the targeted full record to make on A (comparison/targeting.py).
    targeted_capture: dict[str, Any] | None = None
    tolerances: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    verdict: str = PASS
    reason: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict != FAIL

    @property
    def exit_code(self) -> int:
        return EXIT_FINDING if self.verdict == FAIL else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.verdict,
            "probable_cause": self.probable_cause,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "a": dict(self.a),
            "b": dict(self.b),
            "capture": self.capture,
            "env_diff": self.env_diff,
            "assets": self.assets,
            "runtime": list(self.runtime),
            "stages": list(self.stages),
            "first_divergent_stage": self.first_divergent_stage,
            "layers": list(self.layers),
            "first_divergent_layer": self.first_divergent_layer,
            "first_introducing_layer": self.first_introducing_layer,
            "error_growth": list(self.error_growth),
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "predictions": self.predictions,
            "performance": self.performance,
            "api_changes": list(self.api_changes),
            "targeted_capture": self.targeted_capture,
            "tolerances": self.tolerances,
            "notes": list(self.notes),
        }


def decide_verdict(r: VerifyResult) -> None:
    """Set ``verdict``, ``reason`` and ``warnings`` from the sections, most decisive first."""
    failures = _failures(r)
    r.warnings = _warnings(r)
    if failures:
        r.verdict, r.reason = FAIL, failures[0] + (f" (and {len(failures) - 1} more finding(s))" if len(failures) > 1 else "")
    elif r.warnings:
        r.verdict, r.reason = WARN, "Outputs match within tolerance, but " + r.warnings[0][0].lower() + r.warnings[0][1:]
    else:
        r.verdict, r.reason = PASS, _pass_reason(r)


def _failures(r: VerifyResult) -> list[str]:
    """Failure reasons, causes before symptoms: inputs, architecture, runtime, weights, layers, outputs."""
    out: list[str] = []
    early = r.first_divergent_stage in ("inputs", "preprocess")
    if early:
        out.append(f"The {r.first_divergent_stage} stage diverges: B computes different {_stage_noun(r)}.")
    if r.only_a:
        out.append(f"{len(r.only_a)} of A's layers do not exist in B (another architecture?), e.g. {r.only_a[0]}.")
    errors = [f for f in r.runtime if f.get("severity") == "error"]
    if errors:
        out.append(f"Runtime state differs: {errors[0]['message']}")
    if r.api_changes:
        out.append(f"{r.api_changes[0]['message']}: an API change.")
    params = r.assets.get("params") or []
    if params:
        out.append(f"{len(params)} weight tensor(s) differ, e.g. {params[0]['name']}.")
    if r.first_divergent_layer:
        out.append(f"Layer outputs diverge, first at {r.first_divergent_layer}" + (
            f"; introduced by {r.first_introducing_layer}." if r.first_introducing_layer else "."))
    if r.first_divergent_stage and not early:
        out.append(f"The {r.first_divergent_stage} stage diverges: B computes different {_stage_noun(r)}.")
    if r.performance and r.performance.get("regression"):
        out.append("B is significantly slower than A's baseline.")
    return out


def _stage_noun(r: VerifyResult) -> str:
    return "model inputs (e.g. token ids)" if r.first_divergent_stage in ("inputs", "preprocess") else "outputs"


_NOT_DRIFT = ("runtime", "package_source")


def _warnings(r: VerifyResult) -> list[str]:
    out: list[str] = []
    # Runtime items are judged as runtime findings; low-risk items (an unrelated env var)
    # and where pip/uv fetch from (it matters to a rebuild, not to the running model)
    # stay listed in the report without turning a PASS into a warning.
    drift = [i for i in r.env_diff.get("items", [])
             if i.get("category") not in _NOT_DRIFT and i.get("risk") != "low"]
    if drift:
        out.append(_drift_warning(drift, r.env_diff.get("items", [])))
    files = r.assets.get("files") or []
    if files:
        out.append(f"{len(files)} asset file(s) differ, e.g. {files[0]['path']}.")
    out.extend(f"{f['message']}" for f in r.runtime if f.get("severity") == "warning")
    if r.only_b:
        out.append(f"B has {len(r.only_b)} layer(s) A did not record, e.g. {r.only_b[0]}.")
    return out


def _drift_warning(drift: list[dict[str, Any]], items: list[Any]) -> str:
    """One count for the headline and the environment table (every item); the items that
    turn a PASS into a warning are counted apart, by their risk."""
    top = drift[0]
    aside = any(isinstance(i, dict) and i.get("category") in _NOT_DRIFT and i.get("risk") != "low" for i in items)
    some = "" if len(drift) == len(items) else f", {len(drift)} of them {_risk_words(drift)}" + (
        " (runtime state and package sources aside)" if aside else "")
    total = len(items)
    return (f"The environment differs in {total} place(s){some}, e.g. {top.get('name')} "
            f"{top.get('a')} -> {top.get('b')}.")


def _risk_words(items: list[dict[str, Any]]) -> str:
    risks = {i.get("risk") for i in items}
    if risks <= {"high", "medium"}:
        return " or ".join(f"{x}-risk" for x in _RISKS if x in risks)
    return "not low-risk"


_RISKS = ("high", "medium", "low")


def _pass_reason(r: VerifyResult) -> str:
    """The PASS sentence; it names the highest risk among the differences it lists, never hides it."""
    n = sum(1 for layer in r.layers if layer.get("status") == "match")
    layers = f", {n} layers" if r.layers else ""
    weights = r.assets.get("weights_compared") is not False
    assets = "assets" if weights else "asset files"
    items = [i for i in r.env_diff.get("items", []) if isinstance(i, dict)]
    if not items:
        env = f", same environment and {assets}"
    else:
        worst = min(items, key=lambda i: _RISKS.index(i["risk"]) if i.get("risk") in _RISKS else len(_RISKS))
        risk = worst.get("risk") if worst.get("risk") in _RISKS else "unrated"
        if risk == "low":
            env = f"; {len(items)} low-risk environment difference(s) listed"
        else:
            env = (f"; {len(items)} environment difference(s) listed, highest risk {risk}: {worst.get('name')} "
                   f"{worst.get('a')} -> {worst.get('b')}")
    if not weights:
        side = "B exposes none" if "B exposes" in str(r.assets.get("note")) else "record lists none"
        env += f"; weights not compared ({side})"
    return f"B reproduces A: every stage{layers} within tolerance{env}."
