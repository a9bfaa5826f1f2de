"""Fleet verify: one golden record checked on every node of a Ray cluster.

``fleet_verify(record, target, address=None, nodes=None, labels=None) -> FleetResult``
(:mod:`parity.fleet.verification`); Ray is imported only when it is called.
"""

from __future__ import annotations

from parity.fleet.cluster import FleetError, Node
from parity.fleet.verification import FleetResult, NodeResult, fleet_verify

__all__ = ["FleetError", "FleetResult", "Node", "NodeResult", "fleet_verify"]
