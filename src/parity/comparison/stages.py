"""Stage comparison (inputs, preprocess, model, postprocess) and prediction agreement.

Stage tensors live in ``stages.safetensors`` named ``<batch>/<stage>/<flat path>``.
For integer stages (token ids) the report shows the differing rows, with the positions
and A's and B's values, because that is what a person needs to see a tokenizer change.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from parity.comparison.metrics import TensorMetrics, compare_tensors
from parity.comparison.tolerances import Tolerance, TolerancePolicy
from parity.records.format import STAGE_NAMES, STAGES, STAGES_META, Record

#: At most this many differing rows are reported per stage.
MAX_ROWS = 20
#: Classification-like outputs: named like logits, or 2-D with at most this many classes.
MAX_CLASSES_UNNAMED = 32
TOPK = 5


def stage_tensors(rec: Record) -> dict[str, dict[str, Any]]:
    """``{stage: {"<batch>/<flat path>": tensor}}`` for every stage tensor in the record."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    if not rec.has(STAGES):
        return out
    handle = rec.tensors(STAGES)
    for name in handle.keys():  # noqa: SIM118 - safe_open has keys(), not __iter__
        batch, _, rest = name.partition("/")
        stage, _, path = rest.partition("/")
        out[stage][f"{batch}/{path}"] = rec.tensor(STAGES, name)
    return out


def compare_stages(rec_a: Record, rec_b: Record, policy: TolerancePolicy) -> list[dict[str, Any]]:
    """One entry per stage in pipeline order: status match|diverged|missing, metrics, rows."""
    ta, tb = stage_tensors(rec_a), stage_tensors(rec_b)
    meta_a, meta_b = _stage_meta(rec_a), _stage_meta(rec_b)
    out = []
    for stage in _stage_order(ta, tb, meta_a, meta_b):
        out.append(_compare_stage(stage, ta.get(stage, {}), tb.get(stage, {}), meta_a.get(stage), meta_b.get(stage), policy))
    return out


def _stage_order(*sources: dict[str, Any]) -> list[str]:
    seen = {s for src in sources for s in src}
    return [s for s in STAGE_NAMES if s in seen] + sorted(seen - set(STAGE_NAMES))


def _stage_meta(rec: Record) -> dict[str, list[Any]]:
    """``{stage: [structure per batch]}`` from stages.json (non-tensor values included)."""
    if not rec.has(STAGES_META):
        return {}
    raw = rec.json(STAGES_META)
    out: dict[str, list[Any]] = defaultdict(list)
    for batch in raw.get("batches", []) if isinstance(raw, dict) else []:
        for stage, value in (batch.get("stages") or {}).items() if isinstance(batch, dict) else ():
            out[stage].append(value)
    return out


def _compare_stage(
    stage: str, a: dict[str, Any], b: dict[str, Any], meta_a: Any, meta_b: Any, policy: TolerancePolicy
) -> dict[str, Any]:
    entry: dict[str, Any] = {"stage": stage, "status": "match", "metrics": None, "rows": [], "tensors": []}
    if (not a and meta_a is None) or (not b and meta_b is None):
        entry["status"] = "missing"
        return entry
    differing = differing_values(meta_a or [], meta_b or [], policy.for_layer(stage, "float32"))
    if differing:
        entry["status"] = "diverged"
        entry["rows"].extend(differing[:MAX_ROWS])
    total: TensorMetrics | None = None
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            entry["status"] = "diverged"
            entry["tensors"].append({"name": name, "status": "only_a" if name in a else "only_b"})
            continue
        tol = policy.for_layer(f"{stage}/{name}", _dtype(a[name]))
        m = compare_tensors(a[name], b[name], tol.atol, tol.rtol)
        entry["tensors"].append({"name": name, "status": "match" if m.ok else "diverged", "metrics": m.to_json()})
        total = m if total is None else total.merge(m)
        if not m.ok:
            entry["status"] = "diverged"
            entry["rows"].extend(differing_rows(name, a[name], b[name], MAX_ROWS - len(entry["rows"])))
    entry["metrics"] = total.to_json() if total is not None else None
    return entry


def differing_values(meta_a: list[Any], meta_b: list[Any], tol: Tolerance) -> list[dict[str, Any]]:
    """Non-tensor values of a stage (labels, Python floats) that differ between A and B.

    Floats use the float32 tolerance (a ``.tolist()`` of an embedding must not fail on
    rounding); everything else, and the structure itself, must be equal.
    """
    va, vb = _leaves(meta_a), _leaves(meta_b)
    out = []
    for path in list(dict.fromkeys([*va, *vb])):
        x, y = va.get(path, _ABSENT), vb.get(path, _ABSENT)
        if not _values_equal(x, y, tol):
            out.append({"name": path, "a": None if x is _ABSENT else x, "b": None if y is _ABSENT else y})
    return out


_ABSENT = object()


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    """``{path: leaf}`` for every non-tensor leaf of a stages.json structure (tensors by name)."""
    if isinstance(node, list):
        return {k: v for i, n in enumerate(node) for k, v in _leaves(n, f"{path}/{i}").items()}
    if not isinstance(node, dict):
        return {path: node}
    for container in ("dict", "tuple", "list"):
        if container in node:
            children = node[container]
            items = children.items() if isinstance(children, dict) else enumerate(children)
            return {k: v for name, n in items for k, v in _leaves(n, f"{path}/{name}").items()}
    if "tensor" in node:
        return {path: ("tensor",)}  # compared as tensors; here only its presence counts
    return {path: node.get("value", node.get("object"))}


def _values_equal(x: Any, y: Any, tol: Tolerance) -> bool:
    if isinstance(x, float) and isinstance(y, (int, float)) and not isinstance(y, bool):
        d = abs(x - y)
        return d <= tol.atol or d <= tol.rtol * abs(x)
    return bool(x == y)


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def differing_rows(name: str, a: Any, b: Any, limit: int) -> list[dict[str, Any]]:
    """Rows of an integer (token id) tensor that differ, with positions and both values.

    ``name`` is ``<batch>/<flat path>``; ``row`` counts within that batch.
    """
    if limit <= 0 or a.is_floating_point() or a.dim() == 0:
        return []
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1) if b.dim() else b.reshape(1, -1)
    out = []
    for row in range(max(a2.shape[0], b2.shape[0])):
        ra = a2[row].tolist() if row < a2.shape[0] else []
        rb = b2[row].tolist() if row < b2.shape[0] else []
        if ra == rb:
            continue
        width = max(len(ra), len(rb))
        positions = [i for i in range(width) if i >= len(ra) or i >= len(rb) or ra[i] != rb[i]]
        batch, _, path = name.partition("/")
        out.append({"batch": int(batch) if batch.isdigit() else batch, "name": path, "row": row,
                    "positions": positions[:64], "a": ra, "b": rb})
        if len(out) >= limit:
            break
    return out


def first_divergent_stage(stages: list[dict[str, Any]]) -> str | None:
    return next((s["stage"] for s in stages if s["status"] == "diverged"), None)


def predictions(rec_a: Record, rec_b: Record) -> dict[str, Any] | None:
    """Agreement of the final outputs (postprocess if recorded, else model).

    Kind ``logits`` (a name containing "logit", or 2-D with at most 32 columns): argmax
    agreement and top-k overlap per row. Kind ``embedding`` (other 2-D float): mean and
    minimum row cosine. Error metrics for every kind.
    """
    ta, tb = stage_tensors(rec_a), stage_tensors(rec_b)
    stage = next((s for s in ("postprocess", "model") if ta.get(s) and tb.get(s)), None)
    if stage is None:
        return None
    name = _primary(ta[stage], tb[stage])
    if name is None:
        return None
    a, b = _concat(ta[stage], name), _concat(tb[stage], name)
    if a is None or b is None or a.shape != b.shape:
        return {"stage": stage, "output": name, "kind": "other", "comparable": False}
    return {"stage": stage, "output": name, "comparable": True, **_agreement(name, a, b)}


def _primary(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The flat path (batch stripped) of the first float output present on both sides."""
    paths = [k.partition("/")[2] for k in a if a[k].is_floating_point()]
    common = [p for p in dict.fromkeys(paths) if any(k.partition("/")[2] == p for k in b)]
    preferred = [p for p in common if "logit" in p.lower()]
    return next(iter(preferred or common), None)


def _concat(tensors: dict[str, Any], path: str) -> Any:
    import torch

    parts = [t for k, t in sorted(tensors.items(), key=lambda kv: _batch_index(kv[0])) if k.partition("/")[2] == path]
    if not parts:
        return None
    try:
        return torch.cat([p.reshape(p.shape[0], -1) if p.dim() else p.reshape(1, 1) for p in parts]).float()
    except RuntimeError:  # batches of different widths: compare only the first
        return parts[0].reshape(parts[0].shape[0], -1).float()


def _batch_index(key: str) -> int:
    head = key.partition("/")[0]
    return int(head) if head.isdigit() else 0


def _agreement(name: str, a: Any, b: Any) -> dict[str, Any]:
    import torch

    m = compare_tensors(a, b, 0.0, 0.0).to_json()
    errors = {"max_abs": m["max_abs"], "mean_abs": m["mean_abs"], "rel_l2": m["rel_l2"]}
    if "logit" in name.lower() or (a.dim() == 2 and 1 < a.shape[1] <= MAX_CLASSES_UNNAMED):
        k = min(TOPK, a.shape[1])
        top_a, top_b = a.topk(k, dim=1).indices, b.topk(k, dim=1).indices
        overlap = [len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(top_a, top_b)]
        agree = (a.argmax(dim=1) == b.argmax(dim=1)).double().mean().item()
        return {"kind": "logits", "argmax_agreement": agree, "topk_overlap": sum(overlap) / len(overlap),
                "k": k, "cosine": m["cosine"], **errors}
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1)
    kind = "embedding" if a.dim() == 2 and a.shape[1] > 1 else "other"
    return {"kind": kind, "argmax_agreement": None, "topk_overlap": None,
            "cosine": cos.mean().item(), "cosine_min": cos.min().item(), **errors}
