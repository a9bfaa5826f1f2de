"""``fleet_verify()``: one golden record verified on every node of a Ray cluster.

One Ray task is pinned to each chosen node (``NodeAffinitySchedulingStrategy``, not
soft: a task never drifts to another node), and runs ``parity verify`` there in the
node's own Python (:mod:`parity.fleet.node`). The driver gathers the verdicts and the
snapshots, groups the nodes whose environments ``parity diff`` finds identical, and
says how every other group differs from the largest one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parity._text import one_line
from parity.errors import ParityError
from parity.fleet.cluster import Node, alive_nodes, connected, select_nodes
from parity.fleet.node import run_on_node

SCHEMA = "parity.fleet-verify/1"
#: Differences listed per environment group (the rest are counted).
MAX_GROUP_ITEMS = 20

#: progress(node JSON) once per node as its result arrives.
FleetProgress = Callable[[Mapping[str, Any]], None]


@dataclass
class NodeResult:
    """One node's verify: its verdict (``ERROR``: it could not verify), why, where."""

    node: Node
    verdict: str
    exit_code: int | None
    reason: str
    python: str | None = None
    seconds: float | None = None
    env_group: str | None = None
    result: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        r = self.result or {}
        cause = r.get("probable_cause") if isinstance(r.get("probable_cause"), dict) else None
        return {
            **self.node.to_json(), "verdict": self.verdict, "exit_code": self.exit_code, "reason": self.reason,
            "probable_cause": cause, "first_divergent_stage": r.get("first_divergent_stage"),
            "first_divergent_layer": r.get("first_divergent_layer"),
            "first_introducing_layer": r.get("first_introducing_layer"),
            "env_group": self.env_group, "python": self.python, "seconds": self.seconds, "result": self.result,
        }


@dataclass
class FleetResult:
    """What ``parity verify RECORD --ray`` found. ``groups``: environment groups, the
    largest (the reference) first."""

    record: str
    target: str | None
    address: str | None
    alive: int
    nodes: list[NodeResult]
    groups: list[dict[str, Any]]

    @property
    def verdict(self) -> str:
        verdicts = {n.verdict for n in self.nodes}
        for worst in ("FAIL", "ERROR", "PASS-with-warnings"):
            if worst in verdicts:
                return worst
        return "PASS"

    @property
    def exit_code(self) -> int:
        """1 when a node fails; else 2 when a node could not verify; else 0."""
        return {"FAIL": 1, "ERROR": 2}.get(self.verdict, 0)

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.verdict] = counts.get(n.verdict, 0) + 1
        return {
            "schema": SCHEMA, "verdict": self.verdict, "record": self.record, "target": self.target,
            "address": self.address or "local", "alive_nodes": self.alive, "counts": counts,
            "nodes": [n.to_json() for n in self.nodes], "env_groups": self.groups,
        }


def fleet_verify(
    record: str | os.PathLike[str],
    target: str | None = None,
    *,
    address: str | None = None,
    nodes: int | None = None,
    labels: Mapping[str, str] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    max_slowdown: float | None = None,
    timeout: float | None = None,
    progress: FleetProgress | None = None,
) -> FleetResult:
    """Run ``parity verify RECORD TARGET`` on every alive node of the Ray cluster at
    ``address`` (None: a local cluster started for this call), or the first ``nodes`` of
    those carrying every label in ``labels``. RECORD must be reachable from every node
    (a path on shared storage, or a URL). ``max_slowdown`` is a fraction, as for
    :func:`parity.comparison.verify`; ``timeout``: seconds per node command. Never prints.
    """
    record_arg = _reachable(str(record))
    args = [record_arg, *([target] if target else []), *_tolerance_args(atol, rtol, max_slowdown)]
    with connected(address) as ray:
        alive = alive_nodes(ray)
        chosen = select_nodes(alive, nodes, labels)
        results = _run_tasks(ray, chosen, args, timeout, progress)
    groups = group_environments(results)
    return FleetResult(record_arg, target, address, len(alive), results, groups)


def _reachable(record: str) -> str:
    """A local path made absolute (tasks may start in another folder); a URL as given."""
    if "://" in record:
        return record
    return os.path.abspath(record)


def _tolerance_args(atol: float | None, rtol: float | None, max_slowdown: float | None) -> list[str]:
    out: list[str] = []
    if atol is not None:
        out += ["--atol", repr(atol)]
    if rtol is not None:
        out += ["--rtol", repr(rtol)]
    if max_slowdown is not None:
        out += ["--max-slowdown", repr(max_slowdown * 100.0)]
    return out


def _run_tasks(ray: Any, chosen: Sequence[Node], args: list[str], timeout: float | None,
               progress: FleetProgress | None) -> list[NodeResult]:
    """One task pinned per node; results in the nodes' order, whatever order they finish in."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(run_on_node)
    cwd = os.getcwd()
    pending = {
        task.options(num_cpus=0, max_retries=0,
                     scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False))
        .remote(args, cwd, timeout): node
        for node in chosen
    }
    done: dict[str, NodeResult] = {}
    waiting = list(pending)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        node = pending[ready[0]]
        try:
            done[node.node_id] = node_result(node, ray.get(ready[0]))
        except ray.exceptions.RayError as exc:  # the node died, or Ray could not run the task there
            if isinstance(getattr(exc, "cause", None), Exception):
                raise exc.cause from None  # run_on_node itself raised: a bug in parity (exit 3)
            first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
            done[node.node_id] = NodeResult(node, "ERROR", None, f"the task on this node failed: "
                                            f"{one_line(first[0])[:300]}")
        if progress is not None:
            progress(done[node.node_id].to_json())
    return [done[n.node_id] for n in chosen]


def node_result(node: Node, out: Mapping[str, Any]) -> NodeResult:
    """A node's verdict from what :func:`parity.fleet.node.run_on_node` returned."""
    verify = out.get("verify") or {}
    result = verify.get("result")
    code = verify.get("exit_code")
    snap = out.get("snapshot") if isinstance(out.get("snapshot"), dict) else None
    common = {"python": out.get("python"), "seconds": verify.get("seconds"), "snapshot": snap}
    if isinstance(result, dict) and code in (0, 1):
        reason = str(result.get("reason") or "")
        return NodeResult(node, str(result.get("verdict")), code, one_line(reason)[:500], result=result, **common)
    tail = [line for line in str(verify.get("stderr_tail") or "").splitlines() if line.strip()]
    said = one_line(tail[-1])[:500] if tail else f"exit code {code}"
    return NodeResult(node, "ERROR", code, f"could not verify here: {said}", **common)


def group_environments(results: Sequence[NodeResult]) -> list[dict[str, Any]]:
    """Nodes whose snapshots ``parity diff`` finds identical share a group; groups are
    ordered largest first (the reference), and every other group lists how it differs
    from the reference."""
    from parity.env import diff

    groups: list[tuple[dict[str, Any], list[NodeResult]]] = []
    for res in results:
        if res.snapshot is None:
            continue
        try:
            _join(groups, res, diff)
        except ParityError as exc:  # a node's snapshot parity cannot read: no group, and why
            res.reason += f" (environment not compared: {one_line(exc.message)[:200]})"
    # The largest group first; between groups of one size, the one with more passing nodes
    # (sorted() is stable: then the nodes' order).
    groups.sort(key=lambda g: (-len(g[1]), -sum(m.verdict.startswith("PASS") for m in g[1])))
    out: list[dict[str, Any]] = []
    for i, (rep, members) in enumerate(groups):
        name = f"env-{i + 1}"
        for res in members:
            res.env_group = name
        entry: dict[str, Any] = {"group": name, "fingerprint": fingerprint(rep), "reference": i == 0,
                                 "nodes": [m.node.node_id for m in members],
                                 "hostnames": sorted({m.node.hostname for m in members}), "differences": [],
                                 "n_differences": 0}
        if i:
            items = diff(groups[0][0], rep).to_json()["items"]
            entry["differences"] = [_difference(item) for item in items[:MAX_GROUP_ITEMS]]
            entry["n_differences"] = len(items)
        out.append(entry)
    return out


def _join(groups: list[tuple[dict[str, Any], list[NodeResult]]], res: NodeResult, diff: Any) -> None:
    assert res.snapshot is not None
    for rep, members in groups:
        if diff(rep, res.snapshot).identical:
            members.append(res)
            return
    diff(res.snapshot, res.snapshot)  # an unreadable snapshot fails here, before it founds a group
    groups.append((res.snapshot, [res]))


def _difference(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in ("category", "name", "a", "b", "change", "risk", "reason")}


def fingerprint(snapshot: Mapping[str, Any]) -> str:
    """A short digest of a snapshot without its volatile ``meta`` (when, where, how long)."""
    body = {k: v for k, v in snapshot.items() if k != "meta"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]
