"""A real local Ray cluster for the fleet tests: two nodes, one of them planted.

``ray.cluster_utils.Cluster`` starts a head and a worker node as real raylets on this
machine. The worker node's raylet (and so every worker and every process it starts) has
``TORCH_FLEET_TEST_SCALE=1.5``; the others have the test process's environment. The
cluster is shut down after the module, and the test checks no raylet is left behind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet_target import PLANTED, TARGET  # noqa: E402
from ray_procs import raylets  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """{"address", "planted": node id, "nodes": [ids]}: a 2-node cluster; the driver is not connected."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    before = set(raylets())
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "labels": {"pool": "a"}})
    try:
        planted = c.add_node(num_cpus=1, env_vars=dict(PLANTED), labels={"pool": "b"})
        c.wait_for_nodes()
        ids = [n.node_id for n in c.list_all_nodes()]
        yield {"address": c.address, "planted": planted.node_id, "nodes": ids}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
    assert set(raylets()) <= before, "a raylet of the test cluster outlived it"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A record of the fleet target made in a fresh process, as on machine A (this test
    process imported Ray, which puts its vendored packages on sys.path: a snapshot taken
    here would list them, and every node would differ from A by them)."""
    import os
    import subprocess

    assert "TORCH_FLEET_TEST_SCALE" not in os.environ
    out = tmp_path_factory.mktemp("fleet") / "golden"
    proc = subprocess.run([sys.executable, "-m", "parity", "record", TARGET, "-o", str(out)],
                          capture_output=True, text=True, cwd=HERE, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out
