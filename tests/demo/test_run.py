"""``parity demo`` end to end: the scenarios' verdicts, the files, bad output folders."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from parity.demo import run as demo_run
from parity.demo.scenarios import DROPOUT_MODULE, PERTURBED_PARAM, SCENARIOS
from parity.records import read_record

EXPECTED = {"other-threads": "PASS", "tokenizer-setting": "FAIL", "perturbed-weight": "FAIL", "dropout-left-on": "FAIL"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """One real demo run through the CLI with --json: (exit code, JSON document, stderr, folder)."""
    from parity.cli.main import main

    out = tmp_path_factory.mktemp("demo") / "parity-demo"
    # capsys is function-scoped, and this run is shared by the module: capture by hand.
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "-o", str(out), "--json"])
    return code, json.loads(stdout.getvalue()), stderr.getvalue(), out


@pytest.mark.slow
def test_demo_scenarios_get_their_verdicts(demo):
    code, doc, _, _ = demo
    assert code == 0 and doc["ok"] is True and doc["schema"] == "parity.demo/1"
    assert {s["name"]: s["verdict"] for s in doc["scenarios"]} == EXPECTED
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert by_name["tokenizer-setting"]["first_divergent_stage"] == "preprocess"
    assert by_name["perturbed-weight"]["first_introducing_layer"].startswith(PERTURBED_PARAM.rsplit(".", 1)[0] + "#")
    assert "training_mode" in by_name["dropout-left-on"]["runtime_codes"]
    # The summary leads with the probable cause, as verify's report does.
    assert "tokenizer_config.json" in by_name["tokenizer-setting"]["probable_cause"]
    assert PERTURBED_PARAM in by_name["perturbed-weight"]["probable_cause"]
    assert "model.eval()" in by_name["dropout-left-on"]["probable_cause"]
    assert by_name["other-threads"]["probable_cause"] is None


@pytest.mark.slow
def test_demo_reports_and_findings_on_disk(demo):
    _, _, stderr, out = demo
    assert "recording the reference model" in stderr
    read_record(out / "reference")
    index = (out / "index.html").read_text()
    for s in SCENARIOS:
        assert f"href='reports/{s.name}.html'" in index
        page = (out / "reports" / f"{s.name}.html").read_text()
        assert "id='verdict-text'" in page and "data-layers-total='" in page
    tok = json.loads((out / "reports" / "tokenizer-setting.json").read_text())
    assert [f["relpath"] for f in tok["assets"]["files"]] == ["tokenizer_config.json"]
    assert any(row["a"] != row["b"] for s in tok["stages"] for row in s["rows"])
    drop = json.loads((out / "reports" / "dropout-left-on.json").read_text())
    assert any(DROPOUT_MODULE in f["message"] for f in drop["runtime"])
    weight = json.loads((out / "reports" / "perturbed-weight.json").read_text())
    assert [p["name"] for p in weight["assets"]["params"]] == [PERTURBED_PARAM]


@pytest.mark.slow
def test_demo_target_files_rerun_with_verify(demo, run_cli):
    _, _, _, out = demo
    code, stdout, _ = run_cli("verify", out / "reference", f"{out / 'targets' / 'dropout-left-on.py'}:build", "--json")
    assert code == 1 and json.loads(stdout)["verdict"] == "FAIL"
    code, stdout, _ = run_cli("verify", out / "reference", f"{out / 'targets' / 'other-threads.py'}:build", "--json")
    assert code == 0 and json.loads(stdout)["verdict"] == "PASS"


@pytest.mark.slow
def test_demo_replaces_an_earlier_demo(demo, tmp_path):
    _, _, _, out = demo
    assert (out / demo_run.MARKER).is_file()
    demo_run._prepare(out)  # an earlier demo folder is emptied, not refused
    assert [p.name for p in out.iterdir()] == [demo_run.MARKER]


def test_interrupted_demo_leaves_nothing(monkeypatch, tmp_path):
    def half_way(out: Path, say):
        (out / "reference").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_run, "_record_reference", half_way)
    with pytest.raises(KeyboardInterrupt):
        demo_run.run_demo(tmp_path / "d")
    assert not (tmp_path / "d").exists()
