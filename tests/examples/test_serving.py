"""The example server (examples/serving/app.py) under parity.watch, as a real process on
127.0.0.1: drifts planted from outside while it serves are each caught by the next golden
canary with the right probable cause and shown on /metrics; an untouched server never
leaves PASS."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "serving" / "app.py"
TEXTS = ["The movie was great", "Terrible acting and a boring plot.", "Nice place, good price", "It was OK"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, root: Path, *flags: str) -> None:
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, str(APP), "--golden", str(root / "golden"), "--port",
                                          str(self.port), *flags], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if self.get("/healthz")["verdict"] is not None:  # the first canary has run
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready: {self.log.read_text()[-3000:]}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            body = r.read().decode()
        return body if path == "/metrics" else json.loads(body)

    def post(self, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read().decode())

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in self.get("/metrics").splitlines():
            if line.startswith("parity_watch_"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down: the lifespan closes the watch
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def _start(*flags: str) -> Server:
        servers.append(Server(tmp_path, *flags))
        return servers[-1]

    yield _start
    for s in servers:
        s.stop()


class Traffic:
    """Requests from a client thread while the test plants drifts (bounded)."""

    def __init__(self, server: Server, limit: int = 3000) -> None:
        self.server, self.limit, self.sent, self.errors = server, limit, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.sent < self.limit:
            try:
                out = self.server.post("/predict", {"texts": TEXTS[self.sent % 4: self.sent % 4 + 2]})
                assert len(out["outputs"]) in (1, 2)
            except Exception as exc:  # collected: the test asserts there were none
                self.errors.append(repr(exc))
            self.sent += 1
            time.sleep(0.002)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(60)
        assert not self.errors, self.errors[:3]
        return self.sent


def _canaries(server: Server) -> int:
    return sum(server.get("/parity/status")["canaries"].values())


def _next_canaries(server: Server, n: int = 2, timeout: float = 60) -> dict[str, Any]:
    """Status once ``n`` more canaries have finished: the second one started after the
    change (a canary running during a reload recorded before it: the reload is exclusive)."""
    target = _canaries(server) + n
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.get("/parity/status")
        if sum(status["canaries"].values()) >= target:
            return dict(status)
        time.sleep(0.1)
    raise AssertionError(f"no canary in {timeout}s: {server.log.read_text()[-2000:]}")


def _rewrite_weight(path: Path) -> bytes:
    from safetensors.torch import load_file, save_file

    original = path.read_bytes()
    state = load_file(str(path))
    state["blocks.1.mlp.0.weight"][3, 5] += 0.1
    save_file(state, str(path.with_suffix(".new")))
    path.with_suffix(".new").replace(path)  # as a deployment writes the file
    return original


def _rewrite_tokenizer_config(path: Path) -> bytes:
    original = path.read_bytes()
    config = json.loads(original)
    config["lowercase"] = False
    path.write_text(json.dumps(config))
    return original


def _assert_fails(server: Server, kind: str, subject: str) -> None:
    status = _next_canaries(server)
    assert status["verdict"] == "FAIL", status["reason"]
    assert status["probable_cause"]["kind"] == kind, status["probable_cause"]
    assert subject in status["probable_cause"]["subject"], status["probable_cause"]
    m = server.metrics()
    assert m['parity_watch_verdict{verdict="FAIL",watch="demo"}'] == 1.0
    assert m['parity_watch_verdict{verdict="PASS",watch="demo"}'] == 0.0
    assert m[f'parity_watch_probable_cause{{kind="{kind}",watch="demo"}}'] == 1.0


def _assert_recovers(server: Server) -> None:
    status = _next_canaries(server)
    assert status["verdict"] == "PASS", status["reason"]
    m = server.metrics()
    assert m['parity_watch_verdict{verdict="PASS",watch="demo"}'] == 1.0
    assert not any(k.startswith("parity_watch_probable_cause") for k in m)


@pytest.mark.slow
def test_drifts_planted_while_serving_are_caught_by_the_next_canary(start, tmp_path, run_cli):
    server = start("--canary-every", "0.5", "--sample-every", "10", "--allow-test-hooks")
    assert server.get("/parity/status")["verdict"] == "PASS"
    traffic = Traffic(server)
    model_dir = tmp_path / "demo-model"

    original = _rewrite_weight(model_dir / "weights.safetensors")  # weights changed in place
    server.post("/admin/reload")
    _assert_fails(server, "weight", "blocks.1.mlp.0.weight")
    on_demand = server.post("/parity/check")
    assert (on_demand["verdict"], on_demand["probable_cause"]["kind"]) == ("FAIL", "weight")
    (model_dir / "weights.safetensors").write_bytes(original)
    server.post("/admin/reload")
    _assert_recovers(server)

    config = model_dir / "tokenizer" / "tokenizer_config.json"  # tokenizer config changed on disk
    original = _rewrite_tokenizer_config(config)
    server.post("/admin/reload")
    _assert_fails(server, "asset", "tokenizer_config.json")
    config.write_bytes(original)
    server.post("/admin/reload")
    _assert_recovers(server)

    server.post("/debug/train")  # a code path calls model.train()
    _assert_fails(server, "eval_mode", "")
    server.post("/debug/eval")
    _assert_recovers(server)

    sent = traffic.stop()
    status = server.get("/parity/status")
    assert status["requests"] >= sent > 0 and status["sampled"] >= 1
    assert status["canaries"]["FAIL"] >= 3
    code, out, _ = run_cli("watch-report", tmp_path / "watch-state", "--failure", "--json")
    assert code == 1 and json.loads(out)["probable_cause"]["kind"] == "eval_mode"
    code, out, _ = run_cli("watch-report", tmp_path / "watch-state")
    assert code == 0 and (tmp_path / "watch-state" / "last-canary.html").is_file()


@pytest.mark.slow
def test_an_untouched_server_stays_pass(start):
    server = start("--canary-every", "0.3", "--sample-every", "7")
    traffic = Traffic(server, limit=400)
    deadline = time.monotonic() + 30
    seen = set()
    while traffic.sent < 400 and time.monotonic() < deadline:
        seen.add(server.get("/parity/status")["verdict"])
        time.sleep(0.05)
    sent = traffic.stop()
    status = _next_canaries(server, 1)
    assert seen == {"PASS"} and status["verdict"] == "PASS"
    assert set(status["canaries"]) == {"PASS"} and status["canaries"]["PASS"] >= 5, status["canaries"]
    assert status["requests"] == sent == 400 and status["sampled"] == 400 // 7
    m = server.metrics()
    assert m['parity_watch_verdict{verdict="PASS",watch="demo"}'] == 1.0
    assert not any("FAIL" in k or "ERROR" in k for k in m if k.startswith("parity_watch_canaries_total"))
    assert m['parity_watch_sampled_requests_total{watch="demo"}'] == 400 // 7
    with pytest.raises(urllib.error.HTTPError) as err:  # no test hooks without the flag
        server.post("/debug/train")
    assert err.value.code == 404


@pytest.mark.slow
def test_minilm_server_catches_a_tokenizer_setting(start, tmp_path, minilm_dir):
    server = start("--model", "minilm", "--canary-every", "0", "--sample-every", "2")
    out = server.post("/predict", {"texts": TEXTS[:2]})
    assert out["model"] == "minilm" and len(out["outputs"][0]) == 384
    assert server.post("/parity/check")["verdict"] == "PASS"
    config = tmp_path / "minilm-model" / "tokenizer_config.json"
    original = config.read_bytes()
    config.write_text(json.dumps({**json.loads(original), "model_max_length": 6}))  # truncates the inputs
    server.post("/admin/reload")
    result = server.post("/parity/check")
    assert result["verdict"] == "FAIL", result["reason"]
    assert result["probable_cause"]["kind"] == "asset"
    assert "tokenizer_config.json" in result["probable_cause"]["subject"]
    m = server.metrics()
    assert m['parity_watch_probable_cause{kind="asset",watch="minilm"}'] == 1.0
    config.write_bytes(original)
    server.post("/admin/reload")
    assert server.post("/parity/check")["verdict"] == "PASS"
