"""The Ray cluster: connecting to it (or starting a local one) and choosing its nodes.

Ray is imported here, inside functions, and only when ``--ray`` was asked for: without
it, nothing in parity imports Ray. ``ray.init(address=...)`` waits a long time on an
address where nothing listens, so a ``host:port`` address is probed with a plain TCP
connection first and a dead one is a user error at once.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parity._text import one_line
from parity.errors import ParityError

INSTALL_FIX = "pip install 'parity[ray]'"
_PROBE_TIMEOUT_S = 3.0


class FleetError(ParityError):
    """The cluster could not be used: Ray missing, no cluster at ADDRESS, no node to run on."""


@dataclass(frozen=True)
class Node:
    """One alive Ray node: its id, where it is, and the labels a selector matches."""

    node_id: str
    ip: str
    hostname: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "ip": self.ip, "hostname": self.hostname, "labels": dict(self.labels)}


def import_ray(flag: str = "--ray") -> Any:
    """The ``ray`` module, or a user error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise FleetError(f"{flag}: Ray is not installed", fix=INSTALL_FIX) from None
    return ray


@contextlib.contextmanager
def connected(address: str | None, flag: str = "--ray") -> Iterator[Any]:
    """Connect to the cluster at ``address`` (None: start a local one, Ray's embedded
    default) for the duration of the block; yields the ``ray`` module. A driver already
    connected (a library user's own ``ray.init``) is used as it is and left connected."""
    ray = import_ray(flag)
    if ray.is_initialized():
        yield ray
        return
    if address:
        _probe(address, flag)
    try:
        ray.init(address=address or None, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        label, what = (f"{flag} {address}", "connect to the Ray cluster") if address else (flag, "start a local Ray")
        raise FleetError(f"{label}: could not {what} ({one_line(str(exc))[:300]})",
                         fix="start one with `ray start --head`, pass its address, or give --ray alone for a "
                             "local cluster") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _probe(address: str, flag: str) -> None:
    """A TCP connection to ``host:port`` (``ray://host:port`` too); ``auto`` is Ray's own."""
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        if address == "auto":
            return
        raise FleetError(f"{flag} {address}: not an address", fix="pass HOST:PORT (e.g. 10.0.0.5:6379) or "
                                                                   "ray://HOST:10001")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise FleetError(f"{flag} {address}: no Ray cluster there ({exc.strerror or exc})",
                         fix="check the address (`ray status` on the head node prints it), or give --ray "
                             "alone for a local cluster") from None


def alive_nodes(ray: Any) -> list[Node]:
    """Every alive node, ordered by IP then id (so ``--nodes N`` picks the same N each time)."""
    nodes = [
        Node(str(n["NodeID"]), str(n.get("NodeManagerAddress") or ""), str(n.get("NodeManagerHostname") or ""),
             {str(k): str(v) for k, v in (n.get("Labels") or {}).items()})
        for n in ray.nodes() if n.get("Alive")
    ]
    return sorted(nodes, key=lambda n: (n.ip, n.node_id))


def parse_labels(selectors: Sequence[str]) -> dict[str, str]:
    """``key=value`` strings (``--node-label``) as a dict; a malformed one is a user error."""
    out: dict[str, str] = {}
    for item in selectors:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FleetError(f"--node-label {item}: expected key=value", fix="pass e.g. --node-label zone=eu-1")
        out[key.strip()] = value.strip()
    return out


def select_nodes(nodes: Sequence[Node], limit: int | None = None,
                 labels: Mapping[str, str] | None = None) -> list[Node]:
    """The nodes that carry every label in ``labels``, the first ``limit`` of them."""
    if not nodes:
        raise FleetError("--ray: the cluster has no alive node", fix="start the cluster's nodes (`ray status`)")
    if limit is not None and limit < 1:
        raise FleetError(f"--nodes {limit}: must be at least 1", fix="pass --nodes 1 or more")
    chosen = [n for n in nodes if all(n.labels.get(k) == v for k, v in (labels or {}).items())]
    if not chosen:
        wanted = ", ".join(f"{k}={v}" for k, v in (labels or {}).items())
        raise FleetError(f"--node-label {wanted}: no alive node carries it ({len(nodes)} alive)",
                         fix="check the labels the nodes were started with (`ray start --labels`)")
    return chosen[:limit] if limit is not None else chosen
