"""The object storage journey on the command line, against a real S3-compatible server on
127.0.0.1 (moto's, tests/s3_server.py): `parity record -o s3://...` and `parity verify
s3://...` in fresh processes, compare and diff with URLs, the bisect verify oracle on a
URL, a corrupted object, a record killed mid-way, no credential in any object, and the
storage failures as one line (exit 2, never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parity.bisection.ddmin import Verdict
from parity.bisection.oracle import verify_oracle
from s3_server import S3Server, s3_server

TESTS = Path(__file__).resolve().parents[1]
#: values that must never land in a record: planted in the recording process's environment
SECRETS = {
    "HF_ENDPOINT": "https://parity-user:endpoint-pass-5f3a9c@hub.example.invalid",
    "PIP_INDEX_URL": "https://pipuser:pip-pass-93b1d7@index.example.invalid/simple",
}


def _clear_fs_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    """The server, this process's environment pointed at it, a working folder holding the
    test models (a recorded target is a relative .py file here)."""
    server = s3_server()
    for name, value in server.env(XDG_CACHE_HOME=str(tmp_path / "cache")).items():
        monkeypatch.setenv(name, value)
    shutil.copy(TESTS / "models.py", tmp_path / "models.py")
    monkeypatch.chdir(tmp_path)
    _clear_fs_cache()
    yield server
    _clear_fs_cache()


def _env(s3: S3Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path), **extra))
    return env


def _parity(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, (proc.returncode, err)
    return err


@pytest.mark.slow
def test_record_to_a_bucket_then_verify_compare_diff_and_bisect_from_it(s3: S3Server, tmp_path: Path,
                                                                          run_cli: Any) -> None:
    url = s3.prefix("journey")
    env = _env(s3, tmp_path, **SECRETS)
    proc = _parity(env, "record", "models.py:build_tiny_text", "-o", url, "--capture", "full", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == url
    # verify in a fresh process, through bisect's verify oracle (the command each trial runs)
    oracle = verify_oracle(url)
    assert oracle.args == ["verify", url, "models.py:build_tiny_text"]
    proc = subprocess.run(oracle.argv(Path(sys.executable)), env=env, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
    assert oracle.classify(proc.returncode, proc.stderr) is Verdict.GOOD
    # compare with a local record of the same model, diff the environments (in this process)
    from models import build_tiny_text
    from parity.records import record

    record(build_tiny_text(), out=tmp_path / "local", capture="full")
    code, out, err = run_cli("compare", url, tmp_path / "local", "--json")
    assert code == 0 and json.loads(out)["a"]["record"] == url, err
    code, out, err = run_cli("diff", url, tmp_path / "local", "--json")
    assert code in (0, 1) and url in json.loads(out)["a"], err
    # no credential, no endpoint, no password of a URL in any object of the bucket
    objects = s3.objects()
    assert any(key.endswith("journey-1/env.json") or key.endswith("/env.json") for key in objects)
    for key, body in objects.items():
        for value in (s3.key_id, s3.secret, s3.endpoint, "endpoint-pass-5f3a9c", "pip-pass-93b1d7"):
            assert value.encode() not in body, (key, value)
    # a corrupted object: exit 2, one line naming it
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    key = f"{prefix}/activations/00000.safetensors"
    client = s3.client()
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=body[:-1] + bytes([body[-1] ^ 0xFF]))
    err = _one_line_exit_2(_parity(env, "verify", url, "models.py:build_tiny_text"))
    assert f"{url}/activations/00000.safetensors: sha256 does not match the manifest" in err


_BIG_MODEL = '''
import os, time
import torch
from parity.target import Pipeline


class Wide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.Linear(256, 10240)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 3:  # two batches of 40 MB activations are out: wait to be killed
            open(os.environ["PARITY_TEST_FLAG"], "w").close()
            time.sleep(300)
        return self.up(x)


def build():
    torch.manual_seed(1)
    return Pipeline(model=Wide(), example_inputs=[torch.randn(1024, 256) for _ in range(6)], batch_size=1)
'''


@pytest.mark.slow
def test_a_record_killed_mid_way_is_no_record_and_the_next_record_takes_its_place(
        s3: S3Server, tmp_path: Path) -> None:
    url = s3.prefix("killed")
    (tmp_path / "wide.py").write_text(_BIG_MODEL)
    flag = tmp_path / "flag"
    env = _env(s3, tmp_path, PARITY_TEST_FLAG=str(flag))
    proc = subprocess.Popen([sys.executable, "-m", "parity", "record", "wide.py:build", "-o", url, "--capture", "full"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (flag.exists() and any("/activations/" in k for k in s3.objects(url))):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the record never uploaded a shard"
            time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    left = s3.objects(url)
    assert left and not any(k.endswith("/manifest.json") for k in left)
    err = _one_line_exit_2(_parity(env, "verify", url, "models.py:build_tiny_text"))
    assert f"{url}: no record here" in err
    from models import build_tiny_text
    from parity.records import read_record, record

    record(build_tiny_text(), out=url, snapshot_env=False)  # the leftovers are replaced, no --overwrite needed
    prefix = url.removeprefix("s3://").partition("/")[2]
    files = read_record(url).manifest["files"]
    assert set(s3.objects(url)) == {f"{prefix}/{name}" for name in [*files, "manifest.json"]}


@pytest.mark.slow
def test_the_real_minilm_recorded_to_a_bucket_verifies_from_it(s3: S3Server, minilm_dir: Path) -> None:
    from parity.comparison import verify
    from parity.records import read_record, record

    url = s3.prefix("minilm")
    texts = ["a sentence about parity", "model drift on a fleet", "records in a bucket", "golden records"]
    record(str(minilm_dir), inputs=texts, out=url, capture="stats", snapshot_env=False)
    rec = read_record(url)
    assert len({e["key"] for e in rec.layers}) > 50  # every encoder layer, read back from the bucket
    result = verify(url, str(minilm_dir)).to_json()
    assert result["verdict"] == "PASS" and result["a"]["record"] == url


# ----------------------------------------------------------- failures in one line (in this process)


def test_storage_failures_on_the_command_line_are_one_line_exit_2(s3: S3Server, run_cli, monkeypatch) -> None:
    code, out, err = run_cli("verify", "s3://no-such-bucket-here/golden", "models.py:build_loop")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no such bucket" in err, err
    assert "s3://no-such-bucket-here/golden" in err and "create the bucket" in err
    code, _, err = run_cli("record", "models.py:build_loop", "-o", "s3://no-such-bucket-here/golden")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such bucket" in err, err
    empty = s3.prefix("empty")
    for args in (("compare", empty, empty), ("diff", empty, "current")):
        code, _, err = run_cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and f"{empty}: no record here" in err, (args, err)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    _clear_fs_cache()
    code, _, err = run_cli("verify", empty, "models.py:build_loop")
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{empty}: access denied" in err, err
    assert "not-the-secret" not in err
