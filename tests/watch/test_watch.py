"""parity.watch in-process: serving, the golden canary, alarms, logs, metrics, close()."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from watch_testing import metric_lines

import parity
from parity.demo.scenarios import EXAMPLE_INPUTS, PERTURBED_ELEMENT, PERTURBED_PARAM
from parity.errors import ParityError, RecordError


def _hooks(model: Any) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _perturb(model: Any, delta: float = 0.1) -> Any:
    """Shift one weight in place; returns what puts the exact old value back."""
    param = model.get_parameter(PERTURBED_PARAM)
    old = param[PERTURBED_ELEMENT].item()
    with torch.no_grad():
        param[PERTURBED_ELEMENT] += delta

    def restore() -> None:
        with torch.no_grad():
            param[PERTURBED_ELEMENT] = old

    return restore


def test_serves_exactly_as_the_pipeline(make_watch, pipeline):
    w = make_watch(pipeline, sample_every=3)
    batch = list(EXAMPLE_INPUTS[:3])
    with torch.no_grad():
        want = pipeline.postprocess(pipeline.model(**pipeline.preprocess(batch)))
        got = [w(batch) for _ in range(6)]  # calls 3 and 6 are sampled
    for out in got:
        assert torch.equal(out, want)
    status = w.status()
    assert (status.requests, status.sampled) == (6, 2)
    assert status.overhead["seconds_total"] > 0


def test_a_bare_model_is_served_with_its_own_arguments(make_watch, tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    rows = [torch.randn(4, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    parity.record(model, rows, out=tmp_path / "g", capture="stats", batch_size=2)
    w = make_watch(model, golden=tmp_path / "g", sample_every=1)
    x = torch.stack(rows[:2])
    with torch.no_grad():
        assert torch.equal(w(x), model(x))
    assert w.status().sampled == 1 and w.check().verdict == "PASS"


def test_check_is_verify_on_the_live_model(make_watch, pipeline, golden, tmp_path):
    w = make_watch(pipeline)
    first = w.check()
    assert first.verdict == "PASS" and first.to_json()["schema"] == "parity.verify/1"
    _perturb(pipeline.model)
    result = w.check()
    # the same check `parity verify` makes on a target built the same way
    target = tmp_path / "perturbed.py"
    target.write_text("from pathlib import Path\nfrom parity.demo.scenarios import build_perturbed_weight\n\n"
                      f"def build():\n    return build_perturbed_weight(Path({str(golden.parent / 'tokenizer')!r}))\n")
    verified = parity.verify(golden, f"{target}:build")
    for key in ("verdict", "first_divergent_stage", "first_divergent_layer", "first_introducing_layer", "only_a"):
        assert getattr(result, key) == getattr(verified, key), key
    assert result.probable_cause["kind"] == verified.probable_cause["kind"] == "weight"
    assert result.probable_cause["subject"] == PERTURBED_PARAM
    assert [r["key"] for r in result.layers] == [r["key"] for r in verified.layers]
    assert result.assets["params"] == verified.assets["params"]


def test_a_model_put_in_training_mode_fails_with_eval_mode(make_watch, pipeline):
    w = make_watch(pipeline)
    pipeline.model.train()
    result = w.check()
    assert result.verdict == "FAIL" and result.probable_cause["kind"] == "eval_mode"
    assert pipeline.model.training  # the canary reports the mode, it does not change it


def test_close_leaves_no_hook_even_mid_request(make_watch, pipeline):
    w = make_watch(pipeline, sample_every=1)
    assert _hooks(pipeline.model) == 0
    inside = threading.Event()
    release = threading.Event()
    seen: list[int] = []

    def slow_pre(batch: list[Any]) -> Any:  # a request that is inside the pipeline when close() starts
        seen.append(_hooks(pipeline.model))
        inside.set()
        release.wait(10)
        return tokenizer(batch)

    tokenizer, pipeline.preprocess = pipeline.preprocess, slow_pre
    thread = threading.Thread(target=w, args=(["a good film"],))
    thread.start()
    inside.wait(10)
    closer = threading.Thread(target=w.close)
    closer.start()
    release.set()
    thread.join(10)
    closer.join(10)
    assert seen and seen[0] > 0  # the sampled call had its hooks on
    assert _hooks(pipeline.model) == 0
    for module in pipeline.model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, module
    pipeline.preprocess = tokenizer
    assert w(["served after close"]).shape == (1, 3)  # unwatched, still serving
    assert w.status().requests == 1 and not w.status().open
    with pytest.raises(ParityError, match="closed"):
        w.check()


def test_a_failing_sampled_call_takes_its_hooks_off(make_watch, pipeline):
    w = make_watch(pipeline, sample_every=1)
    layer = pipeline.model.blocks[1].mlp[0]

    def fails(x: Any) -> Any:
        assert _hooks(pipeline.model) > 0  # mid-forward, the sampled call's hooks are on
        raise RuntimeError("CUDA error: out of memory")

    layer.forward = fails
    with pytest.raises(RuntimeError, match="out of memory"):
        w(["a good film"])
    assert _hooks(pipeline.model) == 0


def test_alarms_on_failure_change_and_recovery(make_watch, pipeline):
    alarms: list[Any] = []
    w = make_watch(pipeline, on_alarm=alarms.append)
    assert w.check().verdict == "PASS" and alarms == []
    restore = _perturb(pipeline.model)
    w.check()
    w.check()  # the same failure again: no second alarm
    assert [a.kind for a in alarms] == ["canary"]
    assert alarms[0].probable_cause["kind"] == "weight" and alarms[0].result.verdict == "FAIL"
    restore()
    pipeline.model.train()
    assert w.check().probable_cause["kind"] == "eval_mode"  # another cause: another alarm
    pipeline.model.eval()
    assert w.check().verdict == "PASS"
    assert [a.kind for a in alarms] == ["canary", "canary", "resolved"]
    assert json.loads(json.dumps(alarms[-1].to_json()))["verdict"] == "PASS"


def test_a_canary_that_cannot_run_is_an_error_not_a_crash(make_watch, pipeline, caplog):
    alarms: list[Any] = []

    def broken(batch: list[Any]) -> Any:
        raise RuntimeError("tokenizer files gone")

    def angry(alarm: Any) -> None:
        alarms.append(alarm)
        raise ValueError("pager down")

    w = make_watch(pipeline, on_alarm=angry)
    pipeline.preprocess = broken
    with caplog.at_level(logging.ERROR, logger="parity.watch"), pytest.raises(ParityError):
        w.check()
    status = w.status()
    assert status.verdict == "ERROR" and "tokenizer files gone" in status.reason
    assert [a.kind for a in alarms] == ["error"]
    events = [json.loads(r.getMessage())["event"] for r in caplog.records]
    assert "alarm-callback-failed" in events


def test_json_log_lines(make_watch, pipeline, caplog):
    with caplog.at_level(logging.INFO, logger="parity.watch"):
        w = make_watch(pipeline)
        w.check()
        _perturb(pipeline.model)
        w.check()
        w.close()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "parity.watch"]
    assert [x["event"] for x in lines] == ["start", "canary", "canary", "alarm", "close"]
    assert all(x["watch"] == "demo-reference" and x["time"] for x in lines)
    assert lines[2]["verdict"] == "FAIL" and lines[2]["probable_cause"]["kind"] == "weight"
    assert caplog.records[2].parity["event"] == "canary"  # also structured, for handlers


def test_metrics_in_a_registry_the_user_passes(make_watch, pipeline, registry):
    w = make_watch(pipeline, sample_every=2)
    before = metric_lines(registry)
    assert before['parity_watch_verdict{verdict="NONE",watch="demo-reference"}'] == 1.0
    for _ in range(4):
        w(["a good film"])
    _perturb(pipeline.model)
    w.check()
    m = metric_lines(registry)
    assert m['parity_watch_verdict{verdict="FAIL",watch="demo-reference"}'] == 1.0
    assert m['parity_watch_probable_cause{kind="weight",watch="demo-reference"}'] == 1.0
    assert m['parity_watch_canaries_total{verdict="FAIL",watch="demo-reference"}'] == 1.0
    assert m['parity_watch_requests_total{watch="demo-reference"}'] == 4.0
    assert m['parity_watch_sampled_overhead_seconds_count{watch="demo-reference"}'] == 2.0
    assert m['parity_watch_sampled_overhead_seconds_sum{watch="demo-reference"}'] > 0
    assert 0 <= m['parity_watch_canary_age_seconds{watch="demo-reference"}'] < 60
    assert any(k.startswith("parity_watch_layer_drift{layer=\"blocks.0.mlp.0#0/out\"") for k in m)
    w.close()
    assert metric_lines(registry) == {}  # a closed watch leaves the registry


def test_two_watches_share_the_global_registry(golden, demo_assets, tmp_path):
    from prometheus_client import REGISTRY

    from parity.demo.scenarios import build_reference

    watches = [parity.watch(build_reference(demo_assets / "tokenizer"), golden, canary_every=None,
                            canary_on_start=False, name=f"w{i}", state_dir=tmp_path / str(i)) for i in range(2)]
    try:
        m = metric_lines(REGISTRY)
        assert {'parity_watch_verdict{verdict="NONE",watch="w0"}', 'parity_watch_verdict{verdict="NONE",watch="w1"}'} <= set(m)
    finally:
        for w in watches:
            w.close()


def test_without_prometheus_client_metrics_are_off_and_the_rest_works(make_watch, pipeline, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails as if not installed
    with caplog.at_level(logging.WARNING, logger="parity.watch"):
        w = make_watch(pipeline)
    why = w.status().metrics
    assert why["enabled"] is False and "pip install 'parity[watch]'" in why["why_not"]
    assert any("parity[watch]" in r.getMessage() for r in caplog.records)
    assert w(["a good film"]).shape == (1, 3) and w.check().verdict == "PASS"


def test_background_canary_and_state_folder(make_watch, pipeline, tmp_path, run_cli):
    done = threading.Event()
    w = make_watch(pipeline, canary_every=0.05, canary_on_start=True, on_alarm=lambda a: done.set())
    _perturb(pipeline.model)
    assert done.wait(30), "no failing canary in 30 s"
    state = Path(w.status().state_dir)
    assert json.loads((state / "last-failure.json").read_text())["verdict"] == "FAIL"
    w.close()
    code, out, _ = run_cli("watch-report", state, "--json")
    assert code == 1 and json.loads(out)["probable_cause"]["kind"] == "weight"
    code, _, err = run_cli("watch-report", state, "--html", tmp_path / "r.html")
    assert code == 1 and "data-verdict='FAIL'" in (tmp_path / "r.html").read_text()
    assert "golden canary of" in err


def test_watch_report_without_a_canary(run_cli, tmp_path):
    code, _, err = run_cli("watch-report", tmp_path)
    assert code == 2 and "no canary has finished" in err


def test_user_errors(pipeline, tmp_path, golden):
    with pytest.raises(RecordError):
        parity.watch(pipeline, tmp_path / "missing", canary_every=None)
    for bad in ({"sample_every": -1}, {"canary_every": -5}, {"window": 0}, {"drift_threshold": 0}):
        with pytest.raises(ParityError):
            parity.watch(pipeline, golden, **bad)


def test_parity_watch_is_callable_whatever_the_name_holds():
    import parity.watch.watcher  # binds parity.watch to the package

    assert callable(parity.watch)
    import inspect

    assert list(inspect.signature(parity.watch).parameters)[:4] == [
        "pipeline_or_model", "golden", "sample_every", "canary_every"]
