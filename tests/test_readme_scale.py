"""The README's sections on load, the C++ runner, object storage and fleets run as written.

Each bash block runs verbatim, one command per line and each a fresh process, in a
folder holding the part of the tree the commands use (tests/models.py), with ``parity``
on PATH meaning this interpreter's parity.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from readme_tools import REPO, code_blocks, parity_env, run, section

GOLDEN_TXT = "A man is eating food.\nA plane is taking off.\nThe cat sits outside.\n"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "models.py").write_text((REPO / "tests" / "models.py").read_text())
    (tmp_path / "golden.txt").write_text(GOLDEN_TXT)
    return tmp_path


def _commands(title: str) -> list[str]:
    (block,) = code_blocks(section(title), "bash")
    return [line for line in block.splitlines() if line.strip()]


def _run_all(commands: list[str], work: Path, env: dict[str, str]) -> list[str]:
    outputs = []
    for command in commands:
        proc = run(command, work, env)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout)
    return outputs


@pytest.mark.slow
def test_load_and_cpp_runner_commands_run(work: Path) -> None:
    commands = _commands("## Under load, and with no Python")
    assert [c.split()[1] for c in commands] == ["bench", "bench", "export", "bench"]
    out = _run_all(commands, work, parity_env(work))
    assert "clients" in out[0] and "server 50 qps" in out[1]
    assert "PASS C++ runner" in " ".join(out[2].split())
    assert "no Python interpreter" in " ".join(out[3].split())


@pytest.mark.slow
def test_bucket_and_fleet_commands_run(work: Path) -> None:
    from s3_server import s3_server

    server = s3_server()
    commands = _commands("## Records in a bucket, verify on a fleet")
    bucket = commands[0].split("s3://")[1].split("/")[0]
    client = server.client()
    if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    env = {**parity_env(work), **server.env()}
    out = _run_all(commands, work, env)
    assert "PASS" in out[1]
    fleet = " ".join(out[2].split())
    assert "PASS" in fleet and "FAIL" not in fleet
    objects = server.objects(f"s3://{bucket}")
    assert any(key.endswith("manifest.json") for key in objects)


@pytest.mark.slow
def test_big_model_commands_run(work: Path) -> None:
    import json

    commands = _commands("## Big models: stats that localise, targeted capture")
    assert [c.split()[1] for c in commands] == ["record", "verify", "record", "verify"]
    _run_all(commands, work, parity_env(work))
    manifest = json.loads((work / "golden-mlp" / "manifest.json").read_text())
    assert manifest["capture"] == "stats" and manifest.get("full_layers")
    layers = json.loads((work / "golden-stats" / "layers.json").read_text())
    assert any("sketch" in entry for entry in layers)
