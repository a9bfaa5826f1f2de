"""Records on object storage (parity.records.remote) against a real S3-compatible server
on 127.0.0.1 (moto's standalone server, tests/s3_server.py), in this process: the round
trip, the manifest written last, shards uploaded while the model runs, integrity, the
local cache, failures and leftovers, and the readers of the layers below records/
(env.load_snapshot, target.policy, bisection's verify oracle)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from parity._io import is_url, remote_error, url_text
from parity.bisection.oracle import oracle_from_spec, verify_oracle
from parity.comparison import compare
from parity.env.snapshots import load_snapshot
from parity.errors import BisectError, ParityError, RecordError
from parity.records import read_record, record
from parity.records import remote as remote_mod
from parity.records.format import MANIFEST
from parity.records.store import store_for
from parity.target import Pipeline
from parity.target.policy import target_of_record
from s3_server import S3Server, s3_server


def _clear_fs_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps one client per options, made with the env of its time


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    server = s3_server()
    for name, value in server.env(XDG_CACHE_HOME=str(tmp_path / "cache")).items():
        monkeypatch.setenv(name, value)
    _clear_fs_cache()
    yield server
    _clear_fs_cache()


class Mlp(torch.nn.Module):
    def __init__(self, fail_at: int | None = None, probe: Any = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 64), torch.nn.Linear(64, 4)
        self.calls, self.fail_at, self.probe = 0, fail_at, probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.probe is not None:
            self.probe(self.calls)
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("planted failure after some shards")
        return self.b(torch.relu(self.a(x)))


def _inputs(n: int = 8) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(16) for _ in range(n)]


def _record(url: str, model: torch.nn.Module | None = None, **kw: Any) -> Any:
    pipe = Pipeline(model=model or Mlp(), batch_size=2)
    kw.setdefault("capture", "full")
    kw.setdefault("shard_bytes", 1024)  # many small shards: each uploaded while the model runs
    return record(pipe, inputs=_inputs(), out=url, snapshot_env=False, **kw)


def _keys(s3: S3Server, url: str) -> set[str]:
    prefix = url.removeprefix("s3://").partition("/")[2]
    return {k[len(prefix) + 1:] for k in s3.objects(url) if k.startswith(prefix + "/")}


# -------------------------------------------------------------------- round trip


def test_a_record_in_a_bucket_reads_back_and_compares_like_a_folder(s3: S3Server, tmp_path: Path) -> None:
    url = s3.prefix("golden")
    result = _record(url)
    assert result.to_json()["path"] == url
    rec = read_record(url)
    assert rec.location == url and rec.capture == "full"
    assert _keys(s3, url) == {*rec.manifest["files"], MANIFEST}  # no marker, nothing else left
    assert sum(name.startswith("activations/") for name in rec.manifest["files"]) > 3
    local = tmp_path / "local"
    _record(str(local))
    assert compare(url, str(local)).to_json()["verdict"] == "PASS"
    assert store_for(url).is_record(url) and not store_for(url).is_record(s3.prefix("nothing"))


def test_members_are_cached_by_the_manifest_hash_and_only_when_they_match(s3: S3Server, tmp_path: Path) -> None:
    url = s3.prefix("cached")
    _record(url)
    reader = store_for(url).open_reader(url)
    import hashlib

    assert reader.cache == tmp_path / "cache" / "parity" / "records" / hashlib.sha256(reader.manifest_bytes).hexdigest()
    read_record(url)
    cached = {p.relative_to(reader.cache).as_posix() for p in reader.cache.rglob("*") if p.is_file()}
    files = set(read_record(url).manifest["files"])
    assert cached == files | {f"{remote_mod._SOURCES}/{name}" for name in files}  # each with the ETag it came from
    shard = min(n for n in cached if n.startswith("activations/"))
    assert (reader.cache / shard).read_bytes() == s3.objects(f"{url}/{shard}")[
        f"{url.removeprefix('s3://').partition('/')[2]}/{shard}"]


# -------------------------------------------------------------------- written while the model runs, manifest last


def test_shards_reach_the_bucket_while_the_model_runs_and_the_manifest_comes_last(
        s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = s3.prefix("streamed")
    seen: dict[str, Any] = {}

    def probe(call: int) -> None:  # the model itself looks into the bucket on its last batch
        if call == 4:
            import time

            for _ in range(100):
                seen["during"] = _keys(s3, url)
                if any(k.startswith("activations/") for k in seen["during"]):
                    break
                time.sleep(0.1)

    original, upload = remote_mod.FsspecWriter._publish, remote_mod.FsspecWriter._upload
    seen["spooled"] = []

    def publish(self: Any, manifest: bytes) -> None:
        seen["before_manifest"] = _keys(s3, url)
        original(self, manifest)

    def counted_upload(self: Any, name: str) -> Any:  # local shards waiting, as each one is uploaded
        seen["spooled"].append(sum(1 for p in self._spool.rglob("*") if p.is_file()))
        return upload(self, name)

    monkeypatch.setattr(remote_mod.FsspecWriter, "_publish", publish)
    monkeypatch.setattr(remote_mod.FsspecWriter, "_upload", counted_upload)
    _record(url, Mlp(probe=probe))
    assert len(seen["spooled"]) > 3 and max(seen["spooled"]) <= 2  # the disk holds a shard or two, not the record
    assert any(k.startswith("activations/") for k in seen["during"]), seen["during"]
    assert MANIFEST not in seen["during"] and remote_mod.PARTIAL in seen["during"]
    files = set(read_record(url).manifest["files"])
    assert MANIFEST not in seen["before_manifest"] and files <= seen["before_manifest"]


def test_an_interrupted_record_leaves_no_record_and_no_objects(s3: S3Server) -> None:
    url = s3.prefix("interrupted")
    with pytest.raises(ParityError, match="planted failure"):
        _record(url, Mlp(fail_at=4))
    assert _keys(s3, url) == set()
    with pytest.raises(RecordError, match=rf"^{url}: no record here \(no manifest.json"):
        read_record(url)


def test_leftovers_of_a_killed_record_are_no_record_and_the_next_record_replaces_them(s3: S3Server) -> None:
    url = s3.prefix("killed")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = s3.client()
    for key in (remote_mod.PARTIAL, "layers.json", "activations/00000.safetensors"):  # what a SIGKILL leaves
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=b"partial")
    with pytest.raises(RecordError, match="no record here"):
        read_record(url)
    _record(url)
    assert MANIFEST in _keys(s3, url) and remote_mod.PARTIAL not in _keys(s3, url)
    read_record(url)


def test_a_prefix_holding_other_data_is_refused_unless_overwrite(s3: S3Server) -> None:
    url = s3.prefix("other-data")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"mine")
    with pytest.raises(RecordError, match=rf"{url}: not empty \(1 objects, and no record\)"):
        _record(url)
    assert _keys(s3, url) == {"notes.txt"}


def test_an_existing_record_is_kept_unless_overwrite_and_a_failed_overwrite_keeps_it(s3: S3Server) -> None:
    url = s3.prefix("replace")
    bucket = url.removeprefix("s3://").partition("/")[0]
    _record(url)
    first = read_record(url).manifest["manifest_sha256"]
    model = Mlp(fail_at=None)
    with pytest.raises(RecordError, match=rf"{url}: already holds a record"):
        _record(url, model)
    assert model.calls == 0  # refused before the model ran
    with pytest.raises(ParityError, match="planted failure"):
        _record(url, Mlp(fail_at=3), overwrite=True)
    assert read_record(url).manifest["manifest_sha256"] == first  # the old record is untouched
    torch.manual_seed(5)
    _record(url, Mlp(), overwrite=True, capture="stats")
    rec = read_record(url)
    assert rec.capture == "stats" and _keys(s3, url) == {*rec.manifest["files"], MANIFEST}
    assert not [k for k in s3.objects(f"s3://{bucket}") if ".parity-tmp-" in k]  # the staging prefix is gone


# -------------------------------------------------------------------- integrity


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("cached", [False, True])
def test_a_corrupted_object_is_refused_and_never_cached(s3: S3Server, damage: str, cached: bool) -> None:
    """Refused whether or not a good copy was cached by an earlier read: the bucket is damaged."""
    url = s3.prefix(f"corrupt-{damage}")
    _record(url)
    if cached:
        read_record(url)
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    key = f"{prefix}/activations/00001.safetensors"
    client = s3.client()
    good = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    bad = good[:-1] + bytes([good[-1] ^ 1]) if damage == "flip" else good[:-5]
    client.put_object(Bucket=bucket, Key=key, Body=bad)
    why = "sha256 does not match the manifest" if damage == "flip" else "manifest says"
    with pytest.raises(RecordError, match=rf"^{url}/activations/00001.safetensors: .*{why}"):
        read_record(url)
    client.put_object(Bucket=bucket, Key=key, Body=good)  # repaired at the source: read again, not from a cache
    read_record(url)


# -------------------------------------------------------------------- failures in one line


def test_a_missing_bucket_is_one_line_naming_the_url_before_the_model_runs(s3: S3Server) -> None:
    model = Mlp()
    with pytest.raises(RecordError, match=r"^s3://no-such-bucket-here/golden: no such bucket") as info:
        _record("s3://no-such-bucket-here/golden", model)
    assert model.calls == 0 and "\n" not in str(info.value) and "create the bucket" in str(info.value)
    with pytest.raises(RecordError, match=r"^s3://no-such-bucket-here/golden: no such bucket"):
        read_record("s3://no-such-bucket-here/golden")


def test_a_record_is_written_under_a_prefix_not_at_the_bucket_root(s3: S3Server) -> None:
    model = Mlp()
    with pytest.raises(RecordError, match=r"^s3://parity-test: a record needs a prefix inside the bucket"):
        _record("s3://parity-test", model)
    assert model.calls == 0


def test_bad_credentials_are_access_denied_in_one_line(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = s3.prefix("denied")
    _record(url)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    _clear_fs_cache()
    with pytest.raises(RecordError, match=rf"^{url}: access denied") as info:
        read_record(url)
    assert "not-the-secret" not in str(info.value) and "AWS_ACCESS_KEY_ID" in str(info.value)


def test_no_credentials_at_all_is_one_line_naming_where_they_come_from(
        s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _clear_fs_cache()
    with pytest.raises(RecordError, match=r"^s3://parity-test/x: no credentials for object storage") as info:
        read_record("s3://parity-test/x")
    assert "AWS_PROFILE" in str(info.value) and "instance role" in str(info.value)


def test_an_unreachable_endpoint_is_one_line(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    _clear_fs_cache()
    with pytest.raises(RecordError, match=r"^s3://parity-test/x: the storage endpoint cannot be reached"):
        read_record("s3://parity-test/x")


def test_failures_are_told_apart_by_class_name_without_importing_backends() -> None:
    class NoCredentialsError(Exception):
        __module__ = "botocore.exceptions"

    class EndpointConnectionError(Exception):
        __module__ = "botocore.exceptions"

    url = "s3://user:hunter2@bucket/golden"
    assert "no credentials" in str(remote_error(url, NoCredentialsError("Unable to locate credentials")))
    assert "cannot be reached" in str(remote_error(url, EndpointConnectionError("http://a:hunter2@x")))
    assert "access denied" in str(remote_error(url, PermissionError("Forbidden")))
    assert "no such bucket" in str(remote_error(url, FileNotFoundError("The specified bucket does not exist")))
    for exc in (NoCredentialsError("x"), EndpointConnectionError("http://a:hunter2@x"), OSError("x")):
        text = str(remote_error(url, exc))
        assert "hunter2" not in text and "\n" not in text and isinstance(remote_error(url, exc), ParityError)


def test_urls_are_told_from_paths() -> None:
    assert is_url("s3://b/k") and is_url(Path("s3://b/k")) and is_url("gs://b") and is_url("memory://x")
    assert not is_url("golden") and not is_url("/tmp/golden") and not is_url("file:///tmp/x") and not is_url("C:/x")
    assert url_text(Path("s3://b/k/")) == "s3://b/k"


# -------------------------------------------------------------------- the readers below records/


def test_load_snapshot_reads_env_json_of_a_bucket_record_checked_against_its_manifest(s3: S3Server) -> None:
    url = s3.prefix("env")
    record(Pipeline(model=Mlp(), batch_size=4), inputs=_inputs(4), out=url, capture="stats")
    snap = load_snapshot(url)
    assert snap["schema"] == "parity.snapshot/1" and snap["packages"]
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/snap.json", Body=json.dumps(snap).encode())
    assert load_snapshot(f"{url}/snap.json")["packages"] == snap["packages"]
    body = s3.client().get_object(Bucket=bucket, Key=f"{prefix}/env.json")["Body"].read()
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/env.json", Body=body.replace(b'"python"', b'"pythoN"'))
    with pytest.raises(RecordError, match=rf"^{url}/env.json: size or sha256 does not match the manifest"):
        load_snapshot(url)
    with pytest.raises(RecordError, match=r"no record here"):
        load_snapshot(s3.prefix("no-record"))


def test_the_recorded_target_of_a_bucket_record_follows_the_policy(
        s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = s3.prefix("target")
    (tmp_path / "serve.py").write_text("import torch\n\ndef build():\n    torch.manual_seed(0)\n"
                                       "    return torch.nn.Linear(16, 4)\n")
    monkeypatch.chdir(tmp_path)
    record("serve.py:build", inputs=_inputs(2), out=url, capture="stats", snapshot_env=False)
    chosen = target_of_record(url)
    assert chosen.spec == "serve.py:build" and chosen.file == (tmp_path / "serve.py").resolve()
    oracle = verify_oracle(url)
    assert oracle.args == ["verify", url, "serve.py:build"] and oracle.label == f"parity verify {url} serve.py:build"
    assert oracle_from_spec(None, (), url, "current").args == oracle.args  # the good side is a bucket record
    assert oracle_from_spec(f"verify:{url}", (), "a.json", "b.json").args == oracle.args
    with pytest.raises(BisectError, match=r"--oracle verify:s3://parity-test/.*: no record there"):
        verify_oracle(s3.prefix("empty"))


def test_memory_urls_use_the_same_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsspec's in-process file system goes through the same code as s3:// (and gs://, az://)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    url = "memory://parity-tests/golden"
    _record(url)
    assert compare(url, url).to_json()["verdict"] == "PASS"
    import fsspec

    fsspec.filesystem("memory").rm("/parity-tests", recursive=True)


def test_the_cache_keeps_the_record_being_read_and_drops_the_least_recently_used(
        s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    base = tmp_path / "cache" / "parity" / "records"
    for age, name in ((300, "old"), (200, "older-but-newer"), (10, "recent")):
        (base / name).mkdir(parents=True)
        (base / name / "blob").write_bytes(b"x" * 1000)
        os.utime(base / name, (0, os.path.getmtime(base / name) - age))
    assert remote_mod.prune_cache(base / "recent", limit=2500) == [base / "old"]
    url = s3.prefix("pruned")
    _record(url)
    monkeypatch.setenv("PARITY_RECORD_CACHE_MAX", "0")
    rec = read_record(url)  # keeps only the record being read, whatever its size
    assert [p for p in base.iterdir()] == [rec.reader.cache] and any(rec.reader.cache.rglob("*.safetensors"))
    monkeypatch.setenv("PARITY_RECORD_CACHE_MAX", "lots")
    with pytest.raises(RecordError, match="PARITY_RECORD_CACHE_MAX=lots: not a size"):
        read_record(url)
