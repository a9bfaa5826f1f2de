"""Per-layer comparison in A's execution order.

Entries of layers.json are matched by (batch, key with wrapper prefixes stripped). Equal
content hashes settle a pair without reading a tensor; otherwise the full tensors
(capture=full) or the seeded samples, the summary stats and, where both entries carry
one, the whole-tensor sketch test (capture=stats, :mod:`parity.comparison.sketch`) are
compared. Batches of one key are merged into one row of the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from parity._text import one_line
from parity.comparison import sketch
from parity.comparison.metrics import TensorMetrics, compare_tensors
from parity.comparison.tolerances import Tolerance, TolerancePolicy, strip_wrapper_prefix
from parity.records.format import ACTIVATIONS, Record

#: Summary stats compared at capture=stats (nan/inf counts are compared exactly).
STAT_FIELDS = ("min", "max", "mean", "std", "l2")
#: How many layers after the first divergent one the error-growth table shows.
GROWTH_LAYERS = 12


@dataclass
class LayerRow:
    """One key of A (all batches merged) and what B did there."""

    key: str
    entry: dict[str, Any]
    status: str = "match"
    metrics: TensorMetrics | None = None
    tolerance: Tolerance | None = None
    first_bad_batch: int | None = None
    notes: list[str] = field(default_factory=list)
    introduced: bool | None = None
    #: Key of the introducing layer inside this module, when this module only contains it.
    contains: str | None = None
    #: capture=stats: the sketch test over the batches (estimated rel_l2, its limit, diverged)
    sketch: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        tol = self.tolerance
        return {
            "key": self.key, "module": e.get("module"), "type": e.get("type"), "kind": e.get("kind", "tensor"),
            "shape": e.get("shape"), "dtype": e.get("dtype"), "status": self.status,
            "metrics": self.metrics.to_json() if self.metrics is not None else None,
            "atol": tol.atol if tol else None, "rtol": tol.rtol if tol else None,
            "noise_floor": tol.noise_floor if tol else None, "introduced": self.introduced,
            "contains": self.contains, "first_bad_batch": self.first_bad_batch, "notes": self.notes,
            "sketch": self.sketch,
        }


def index_entries(entries: Iterable[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """``{(batch, stripped key): entry}``."""
    return {(int(e.get("batch", 0)), strip_wrapper_prefix(str(e["key"]))): e for e in entries}


def compare_layers(rec_a: Record, rec_b: Record, policy: TolerancePolicy) -> tuple[list[LayerRow], list[str]]:
    """Rows in A's execution order (plus only_a rows), and B's keys that A lacks."""
    entries_a, entries_b = rec_a.layers, rec_b.layers
    by_b = index_entries(entries_b)
    rows: dict[str, LayerRow] = {}
    for ea in entries_a:
        key = strip_wrapper_prefix(str(ea["key"]))
        batch = int(ea.get("batch", 0))
        row = rows.setdefault(key, LayerRow(key=key, entry=ea))
        eb = by_b.get((batch, key))
        if eb is None:
            if row.status == "match" and row.metrics is None:
                row.status = "only_a"
            continue
        _compare_pair(rec_a, rec_b, ea, eb, batch, row, policy)
    keys_a = set(rows)
    only_b = list(dict.fromkeys(k for (_b, k) in by_b if k not in keys_a))
    return list(rows.values()), only_b


def _compare_pair(
    rec_a: Record, rec_b: Record, ea: dict[str, Any], eb: dict[str, Any], batch: int, row: LayerRow,
    policy: TolerancePolicy,
) -> None:
    if row.status == "only_a":
        row.status = "match"
    if ea.get("kind", "tensor") != "tensor" or eb.get("kind", "tensor") != "tensor":
        if ea.get("kind") != eb.get("kind") or ea.get("type") != eb.get("type"):
            _mark(row, batch, f"output kind {ea.get('kind')} in A, {eb.get('kind')} in B")
        elif ea.get("value") != eb.get("value"):
            _mark(row, batch, f"value {ea.get('value')!r} in A, {eb.get('value')!r} in B")
        return
    tol = policy.for_layer(row.key, str(ea.get("dtype", "float32")), ea.get("noise_floor"))
    row.tolerance = tol
    m = _pair_metrics(rec_a, rec_b, ea, eb, tol)
    check = None if _same_content(ea, eb) else sketch.check(ea, eb, tol)
    if check is not None:  # rel_l2 and cosine of the whole tensor, estimated
        m = check.into(m)
        row.sketch = sketch.merge(row.sketch, check)
    row.metrics = m if row.metrics is None else row.metrics.merge(m)
    if not m.ok:
        _mark(row, batch, None)
    if check is not None and check.diverged:
        _mark(row, batch, check.note())
    if "stats" in (rec_a.capture, rec_b.capture) and not _stats_agree(ea.get("stats"), eb.get("stats"), tol):
        _mark(row, batch, "summary stats (min/max/mean/std/L2) differ")


def _mark(row: LayerRow, batch: int, note: str | None) -> None:
    row.status = "diverged"
    if row.first_bad_batch is None:
        row.first_bad_batch = batch
    note = one_line(note) if note else note  # values and kinds come from the record
    if note and note not in row.notes:
        row.notes.append(note)


def _same_content(ea: dict[str, Any], eb: dict[str, Any]) -> bool:
    same_meta = ea.get("shape") == eb.get("shape") and ea.get("dtype") == eb.get("dtype")
    return bool(same_meta and ea.get("hash") and ea.get("hash") == eb.get("hash"))


def _pair_metrics(rec_a: Record, rec_b: Record, ea: dict[str, Any], eb: dict[str, Any], tol: Tolerance) -> TensorMetrics:
    same_meta = ea.get("shape") == eb.get("shape") and ea.get("dtype") == eb.get("dtype")
    if _same_content(ea, eb):
        return _zero_metrics(ea, tol)
    if rec_a.capture != rec_b.capture:
        ta, tb = _samples_of_both(rec_a, rec_b, ea, eb)
    else:
        ta, tb = layer_tensor(rec_a, ea), layer_tensor(rec_b, eb)
        if ta is not None and tb is not None and ta.numel() != tb.numel() and same_meta:
            ta, tb = _both_samples(rec_a, rec_b, ea, eb)  # --layers stored one side in full
    if ta is None or tb is None:
        # Nothing stored to compare (capture=outputs, or a mismatch of capture levels):
        # different hashes of equal-looking tensors still say "not bit-identical".
        return _zero_metrics(ea, tol) if same_meta else _shape_only(ea, eb, tol)
    return compare_tensors(ta, tb, tol.atol, tol.rtol)


def _zero_metrics(e: dict[str, Any], tol: Tolerance) -> TensorMetrics:
    shape = tuple(e.get("shape") or ())
    numel = 1
    for s in shape:
        numel *= int(s)
    dtype = str(e.get("dtype"))
    l2 = float(((e.get("stats") or {}).get("l2")) or 0.0)
    return TensorMetrics(numel=numel, shape_a=shape, shape_b=shape, dtype_a=dtype, dtype_b=dtype, atol=tol.atol,
                         rtol=tol.rtol, sum_sq_a=l2 * l2, sum_sq_b=l2 * l2, dot_ab=l2 * l2)


def _shape_only(ea: dict[str, Any], eb: dict[str, Any], tol: Tolerance) -> TensorMetrics:
    return TensorMetrics(numel=0, shape_a=tuple(ea.get("shape") or ()), shape_b=tuple(eb.get("shape") or ()),
                         dtype_a=str(ea.get("dtype")), dtype_b=str(eb.get("dtype")), atol=tol.atol, rtol=tol.rtol,
                         max_abs=None)


def _samples_of_both(rec_a: Record, rec_b: Record, ea: dict[str, Any], eb: dict[str, Any]) -> tuple[Any, Any]:
    """A full record against a stats one: the full tensor read at the other's sample indices."""
    from parity.records import layer_sample

    if not (ea.get("shard") and eb.get("shard")):
        return None, None
    if rec_a.capture == "full":
        idx, vb = layer_sample(rec_b, eb)
        return layer_tensor(rec_a, ea).reshape(-1).index_select(0, idx), vb
    if rec_b.capture == "full":
        idx, va = layer_sample(rec_a, ea)
        return va, layer_tensor(rec_b, eb).reshape(-1).index_select(0, idx)
    return None, None


def _both_samples(rec_a: Record, rec_b: Record, ea: dict[str, Any], eb: dict[str, Any]) -> tuple[Any, Any]:
    """The sampled side's values and the other side's whole tensor at the same positions."""
    from parity.records import layer_sample
    from parity.records.access import stores_full

    if stores_full(rec_a, ea):
        idx, vb = layer_sample(rec_b, eb)
        return layer_tensor(rec_a, ea).reshape(-1).index_select(0, idx), vb
    idx, va = layer_sample(rec_a, ea)
    return va, layer_tensor(rec_b, eb).reshape(-1).index_select(0, idx)


def layer_tensor(rec: Record, entry: dict[str, Any]) -> Any:
    """The stored tensor (full) or sample (stats) of a layer entry, or None if none is stored."""
    shard, name = entry.get("shard"), entry.get("tensor")
    if not shard or not name:
        return None
    rel = str(shard) if "/" in str(shard) else f"{ACTIVATIONS}/{shard}"
    return rec.tensor(rel, str(name))


def _stats_agree(sa: Any, sb: Any, tol: Tolerance) -> bool:
    """Summary stats within tolerance, NaN/Inf counts equal; True when either is absent."""
    if not isinstance(sa, dict) or not isinstance(sb, dict):
        return True
    if sa.get("nan") != sb.get("nan") or sa.get("inf") != sb.get("inf"):
        return False
    for name in STAT_FIELDS:
        x, y = sa.get(name), sb.get(name)
        if not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
            continue
        if x != x or y != y:  # NaN: counts above already compared
            continue
        d = abs(x - y)
        # Reductions over many elements round differently than single elements, so
        # the stats get ten times the element tolerance.
        if d > 10 * tol.atol and d > 10 * tol.rtol * abs(x):
            return False
    return True


def first_divergent(rows: list[LayerRow]) -> LayerRow | None:
    return next((r for r in rows if r.status == "diverged"), None)


def error_growth(rows: list[LayerRow], first: LayerRow | None) -> list[dict[str, Any]]:
    """The first divergent layer and the next GROWTH_LAYERS compared layers: how the error grows."""
    if first is None:
        return []
    start = rows.index(first)
    out = []
    for row in rows[start:]:
        if row.metrics is None or not row.metrics.comparable:
            continue
        m = row.metrics.to_json()
        out.append({"key": row.key, "status": row.status, "max_abs": m["max_abs"], "rel_l2": m["rel_l2"],
                    "introduced": row.introduced, "contains": row.contains,
                    "sketch": row.sketch is not None})
        if len(out) > GROWTH_LAYERS:
            break
    return out
