"""``--ray`` without ADDRESS: Ray's embedded default, a local cluster for the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet_target import TARGET
from ray_procs import raylets

from parity.cli.main import main

pytestmark = pytest.mark.slow


def test_ray_alone_verifies_on_a_local_cluster_and_stops_it(golden: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = set(raylets())
    code = main(["verify", str(golden), TARGET, "--json", "--ray"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, [(n["verdict"], n["reason"]) for n in doc["nodes"]]
    assert doc["address"] == "local" and doc["alive_nodes"] == 1
    assert [n["verdict"] for n in doc["nodes"]] == ["PASS"] and len(doc["env_groups"]) == 1
    assert set(raylets()) <= before, "the local cluster outlived the command"
