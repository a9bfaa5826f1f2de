"""A real S3-compatible server on 127.0.0.1 for the object storage tests: moto's standalone
server in a subprocess, with authentication on (an IAM user's key pair, so wrong
credentials are refused as a real bucket refuses them). One server per test session,
shared by every module that asks (`s3_server()`), stopped when the session ends.

Processes that talk to it get `S3Server.env()`: the key pair, `AWS_ENDPOINT_URL`
(botocore, and so s3fs, honour it), a region, no instance-metadata lookups and no
~/.aws files, so nothing on the machine running the tests leaks in.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUCKET = "parity-test"


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str
    proc: subprocess.Popen[bytes]
    home: Path
    _n: list[int] = field(default_factory=lambda: [0])

    def env(self, **extra: str) -> dict[str, str]:
        """Environment variables for a client of this server (add them to os.environ)."""
        return {
            "AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"), "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_MAX_ATTEMPTS": "2", **extra,
        }

    def prefix(self, name: str) -> str:
        """A fresh URL under the test bucket, unique in the session."""
        self._n[0] += 1
        return f"s3://{BUCKET}/{name}-{self._n[0]}"

    def client(self) -> Any:
        """A boto3 client with this server's credentials (for planting and inspecting objects)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key_id,
                            aws_secret_access_key=self.secret, region_name="us-east-1")

    def objects(self, url: str = f"s3://{BUCKET}") -> dict[str, bytes]:
        """Every object under ``url`` (``s3://bucket/prefix``): ``{key: bytes}``."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        client, found = self.client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found


_server: S3Server | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(endpoint: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            return
        time.sleep(0.2)
    raise RuntimeError(f"moto server at {endpoint} did not answer in {timeout:.0f} s")


def _enable_auth(endpoint: str) -> tuple[str, str]:
    """Create an IAM user allowed everything, its key pair, and the bucket; then turn
    authentication on: from here, only that key pair is accepted."""
    import boto3

    kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1",
                          "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="parity-tests")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="parity-tests", PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="parity-tests")["AccessKey"]
    boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(request, timeout=10).read()
    return key["AccessKeyId"], key["SecretAccessKey"]


def s3_server() -> S3Server:
    """The session's server, started on first use."""
    global _server
    if _server is None:
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        home = Path(tempfile.mkdtemp(prefix="parity-s3-home-"))
        log = open(home / "moto.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
        atexit.register(_stop, proc)
        _wait_up(endpoint, proc)
        key_id, secret = _enable_auth(endpoint)
        _server = S3Server(endpoint, key_id, secret, proc, home)
    return _server


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
