"""Fleet verify without a cluster: flags, user errors, node choice, grouping, the table."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from parity.cli.main import main
from parity.fleet.cluster import FleetError, Node, parse_labels, select_nodes
from parity.fleet.node import node_environ
from parity.fleet.verification import FleetResult, group_environments, node_result

NODES = [Node("b" * 56, "10.0.0.2", "h2", {"pool": "a"}), Node("a" * 56, "10.0.0.1", "h1", {"pool": "b"}),
         Node("c" * 56, "10.0.0.3", "h3", {"pool": "a"})]


def test_without_ray_nothing_imports_ray() -> None:
    code = ("import sys; from parity.cli.main import main; import parity.cli.verify, parity.fleet;"
            "main(['verify', '--help']); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_ray_missing_is_a_user_error_naming_the_extra(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["verify", str(tmp_path), "--ray"]) == 2
    assert "pip install 'parity[ray]'" in capsys.readouterr().err


def test_no_cluster_at_the_address_is_a_user_error_at_once(capsys, tmp_path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["verify", str(tmp_path), f"--ray=127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"--ray 127.0.0.1:{port}: no Ray cluster there" in err


@pytest.mark.parametrize("flags", [["--nodes", "2"], ["--node-label", "pool=a"]])
def test_node_flags_need_ray(flags, capsys, tmp_path) -> None:
    assert main(["verify", str(tmp_path), *flags]) == 2
    assert "needs --ray" in capsys.readouterr().err


def test_nodes_are_chosen_by_label_then_count_in_ip_order() -> None:
    ordered = sorted(NODES, key=lambda n: n.ip)
    assert select_nodes(ordered) == ordered
    assert [n.hostname for n in select_nodes(ordered, 1, {"pool": "a"})] == ["h2"]
    assert [n.hostname for n in select_nodes(ordered, None, {"pool": "a"})] == ["h2", "h3"]
    with pytest.raises(FleetError, match="no alive node carries it"):
        select_nodes(ordered, None, {"pool": "z"})
    with pytest.raises(FleetError, match="no alive node"):
        select_nodes([])
    assert parse_labels(["a=1", " b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(FleetError, match="expected key=value"):
        parse_labels(["nolabel"])


def test_the_variables_ray_sets_in_its_workers_are_undone() -> None:
    base = {"OMP_NUM_THREADS": "1", "TORCH_X": "1", "CUDA_VISIBLE_DEVICES": ""}
    assert node_environ(base, initial={"TORCH_X": "1"}) == {"TORCH_X": "1"}
    node_own = {"TORCH_X": "1", "OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert node_environ(base, initial=node_own) == node_own  # the node's own settings come back


def _snap(**env_vars: str) -> dict[str, Any]:
    return {"schema": "parity.snapshot/1", "meta": {"hostname": "x"}, "python": {"version": "3.11.0"},
            "platform": {"system": "Linux"}, "cpu": {}, "packages": {}, "env_vars": dict(env_vars)}


def _out(verdict: str, snap: dict[str, Any] | None, code: int = 0) -> dict[str, Any]:
    result = {"verdict": verdict, "reason": "r", "first_divergent_layer": "1#0" if verdict == "FAIL" else None,
              "probable_cause": {"summary": "a variable"} if verdict == "FAIL" else None}
    return {"python": "/p", "snapshot": snap, "verify": {"exit_code": code, "result": result, "seconds": 1.0}}


def test_groups_are_by_env_diff_largest_first_with_the_differences() -> None:
    results = [node_result(NODES[0], _out("FAIL", _snap(OMP_NUM_THREADS="4"), 1)),
               node_result(NODES[1], _out("PASS", _snap())), node_result(NODES[2], _out("PASS", _snap()))]
    groups = group_environments(results)
    assert [g["nodes"] for g in groups] == [[NODES[1].node_id, NODES[2].node_id], [NODES[0].node_id]]
    assert [(d["name"], d["a"], d["b"]) for d in groups[1]["differences"]] == [("OMP_NUM_THREADS", None, "4")]
    assert [r.env_group for r in results] == ["env-2", "env-1", "env-1"]
    fleet = FleetResult("rec", None, None, 3, results, groups)
    assert (fleet.verdict, fleet.exit_code) == ("FAIL", 1)
    doc = fleet.to_json()
    assert doc["counts"] == {"FAIL": 1, "PASS": 2} and doc["address"] == "local"
    assert doc["nodes"][0]["first_divergent_layer"] == "1#0"


def test_a_tie_makes_the_passing_group_the_reference() -> None:
    results = [node_result(NODES[0], _out("FAIL", _snap(TORCH_X="1"), 1)), node_result(NODES[1], _out("PASS", _snap()))]
    assert group_environments(results)[0]["nodes"] == [NODES[1].node_id]


def test_a_node_that_cannot_verify_is_an_error_with_its_last_words() -> None:
    out = {"python": "/p", "snapshot": None, "verify": {"exit_code": 2, "result": None, "stderr_tail":
                                                         "progress\nerror: DIR: no manifest.json\n"}}
    res = node_result(NODES[0], out)
    assert res.verdict == "ERROR" and res.reason.endswith("error: DIR: no manifest.json")
    fleet = FleetResult("rec", None, "h:1", 3, [res, node_result(NODES[1], _out("PASS", _snap()))], [])
    assert (fleet.verdict, fleet.exit_code) == ("ERROR", 2)


def test_the_table_names_each_node_and_the_differing_group() -> None:
    from rich.console import Console

    from parity.report.terminal.fleet import fleet_report

    results = [node_result(NODES[0], _out("FAIL", _snap(OMP_NUM_THREADS="4"), 1)),
               node_result(NODES[1], _out("PASS", _snap())), node_result(NODES[2], _out("PASS", _snap()))]
    doc = FleetResult("rec", None, None, 3, results, group_environments(results)).to_json()
    console = Console(width=160, record=True)
    console.print(fleet_report(doc))
    text = console.export_text()
    assert "b" * 12 in text and "a variable" in text and "1#0" in text
    assert "env-2" in text and "OMP_NUM_THREADS: - -> 4" in text


def test_the_html_page_has_a_row_per_node_and_the_groups() -> None:
    import re

    from parity.report.html import render_html

    results = [node_result(NODES[0], _out("FAIL", _snap(OMP_NUM_THREADS="4"), 1)),
               node_result(NODES[1], _out("PASS", _snap()))]
    doc = FleetResult("rec", None, None, 2, results, group_environments(results)).to_json()
    page = render_html(doc)
    assert "data-verdict='FAIL'" in page
    row = re.search(rf"<tr data-node='{NODES[0].node_id}'>.*?</tr>", page)
    assert row and "FAIL" in row.group(0) and "a variable" in row.group(0) and "1#0" in row.group(0)
    assert "OMP_NUM_THREADS" in page and "id='parity-result'" in page and "<script src" not in page
