"""Fleet verify on a real 2-node local Ray cluster: the planted node, and only it, fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fleet_target import PLANTED, TARGET

from parity.cli.main import main

pytestmark = pytest.mark.slow


def _fleet_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any]]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_the_planted_node_and_only_it_fails(cluster, golden: Path, capsys, tmp_path: Path) -> None:
    html = tmp_path / "fleet.html"
    code, doc = _fleet_json(capsys, ["verify", str(golden), TARGET, "--json", "--html", str(html),
                                     f"--ray={cluster['address']}"])
    assert code == 1
    assert doc["schema"] == "parity.fleet-verify/1" and doc["verdict"] == "FAIL"
    by_id = {n["node_id"]: n for n in doc["nodes"]}
    assert set(by_id) == set(cluster["nodes"])
    failed = [i for i, n in by_id.items() if n["verdict"] != "PASS"]
    assert failed == [cluster["planted"]], {i: (n["verdict"], n["reason"]) for i, n in by_id.items()}
    bad = by_id[cluster["planted"]]
    assert bad["verdict"] == "FAIL" and bad["first_divergent_layer"].startswith("1#")  # the Scale module
    cause = bad["probable_cause"]
    assert (cause["kind"], cause["subject"]) == ("environment", "TORCH_FLEET_TEST_SCALE"), cause
    # Environments: the plain node is the reference, the planted one apart, and why.
    groups = doc["env_groups"]
    assert [sorted(g["nodes"]) for g in groups] == [sorted(set(cluster["nodes"]) - {cluster["planted"]}),
                                                    [cluster["planted"]]]
    assert groups[0]["reference"] and bad["env_group"] == groups[1]["group"]
    assert [(d["category"], d["name"], d["a"], d["b"]) for d in groups[1]["differences"]] == [
        ("env_var", "TORCH_FLEET_TEST_SCALE", None, PLANTED["TORCH_FLEET_TEST_SCALE"])]
    page = html.read_text(encoding="utf-8")
    assert "data-verdict='FAIL'" in page and f"<tr data-node='{cluster['planted']}'>" in page


def test_terminal_table_of_the_nodes_a_label_selects(cluster, golden: Path, capsys) -> None:
    code = main(["verify", str(golden), TARGET, f"--ray={cluster['address']}", "--node-label", "pool=b"])
    out = capsys.readouterr().out
    assert code == 1
    assert cluster["planted"][:12] in out and "FAIL" in out and "of 2 alive" in out
    assert not any(i[:12] in out for i in cluster["nodes"] if i != cluster["planted"])
