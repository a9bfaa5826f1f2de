"""snapshot(), snapshot_from_python() and load_snapshot() on this machine's test venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from parity.env import diff, load_snapshot, snapshot
from parity.env.snapshots import SCHEMA_FILE, check_snapshot, load_schema, resolve_interpreter
from parity.errors import ParityError, SnapshotError


@pytest.fixture(scope="module")
def snap() -> dict:
    return snapshot()


def test_snapshot_of_this_venv_shows_torch_cpu_build(snap):
    torch = snap["packages"]["torch"]
    assert torch["version"] == "2.13.0+cpu"
    assert torch["local"] == "cpu"
    assert torch["variant"]["kind"] == "cpu"
    assert snap["torch"]["version"] == "2.13.0+cpu"
    assert snap["torch"]["cuda"] is None
    assert snap["torch"]["variant"] == "cpu"


def test_snapshot_shows_cpu_flags_python_and_platform(snap):
    assert snap["cpu"]["flags"], "no ISA flags read from /proc/cpuinfo"
    if snap["platform"]["machine"] == "x86_64":
        assert "sse4_2" in snap["cpu"]["flags"]
    assert snap["cpu"]["logical_cores"] == os.cpu_count()
    assert snap["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert snap["python"]["is_venv"] is True
    assert snap["platform"]["glibc"]
    assert snap["platform"]["distro"]["id"]  # from /etc/os-release
    assert snap["platform"]["release"]
    assert snap["gpu"]["status"] in ("present", "absent", "unknown")


def test_snapshot_validates_against_its_shipped_schema(snap):
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(snap)
    assert SCHEMA_FILE.is_file()


def test_schema_rejects_a_broken_snapshot(snap):
    broken = json.loads(json.dumps(snap))
    del broken["packages"]["torch"]["version"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, load_schema())


def test_default_snapshot_does_not_import_torch():
    code = "import sys; from parity.env import snapshot; s = snapshot(); print(s['torch']['version'], 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2.13.0+cpu", "False"]


def test_two_snapshots_of_one_env_are_identical():
    first, again = snapshot(), snapshot()
    assert again["meta"]["created"] >= first["meta"]["created"]
    result = diff(first, again)
    assert result.identical, result.to_json()


def test_in_process_and_foreign_snapshots_of_one_env_are_identical():
    # --python from outside sees exactly what the interpreter sees from inside.
    snap = snapshot()
    foreign = snapshot(python=sys.executable)
    assert foreign["meta"]["collected_by"] == "subprocess"
    assert foreign["meta"]["pid"] != os.getpid()
    result = diff(snap, foreign)
    assert result.identical, result.to_json()


@pytest.mark.slow
def test_runtime_shows_blas_threads_and_flags():
    # In a fresh interpreter: other tests in this process may have changed torch's global flags.
    snap = snapshot(python=sys.executable, runtime=True)
    jsonschema.Draft202012Validator(load_schema()).validate(snap)
    rt = snap["runtime"]
    blas = [lib for lib in rt["threadpool"].values() if lib["user_api"] == "blas"]
    assert blas and blas[0]["internal_api"] and blas[0]["num_threads"] >= 1  # numpy's BLAS
    torch = rt["torch"]
    assert torch["build"]["blas_info"] == "mkl"
    assert torch["cpu_capability"]
    assert torch["num_threads"] >= 1
    assert torch["float32_matmul_precision"] in ("highest", "high", "medium")
    assert torch["deterministic_algorithms"] is False
    assert torch["default_dtype"] == "torch.float32"
    assert torch["cudnn_version"] is None
    assert torch["grad_enabled"] is True
    assert torch["autocast"]["cpu"]["enabled"] is False
    assert torch["cudnn_benchmark"] is False
    assert torch["cuda_matmul_allow_tf32"] is False
    assert torch["num_interop_threads"] >= 1
    assert torch["parallel_backend"]


@pytest.mark.slow
def test_runtime_in_process_has_the_same_shape():
    snap = snapshot(runtime=True)
    jsonschema.Draft202012Validator(load_schema()).validate(snap)
    assert snap["runtime"]["torch"]["build"]["blas_info"] == "mkl"


@pytest.mark.slow
def test_runtime_runs_in_the_target_interpreter_and_repeats_identically(tmp_path):
    snap = snapshot(python=sys.executable, runtime=True)
    assert snap["runtime"]["torch"]["version"] == "2.13.0+cpu"
    assert snap["runtime"]["threadpool"]
    again = snapshot(python=sys.executable, runtime=True)
    result = diff(snap, again)
    assert result.identical and not result.notes, result.to_json()


# --- load_snapshot ------------------------------------------------------------------------


def test_load_snapshot_from_file_record_dir_bench_and_current(tmp_path, snap):
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snap))
    assert load_snapshot(path)["packages"]["torch"]["version"] == "2.13.0+cpu"
    record = tmp_path / "golden"
    record.mkdir()
    (record / "env.json").write_text(json.dumps(snap))
    assert load_snapshot(record)["schema"] == "parity.snapshot/1"
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"schema": "parity.bench/1", "env": snap}))
    assert load_snapshot(bench)["packages"] == snap["packages"]
    assert load_snapshot("current")["packages"].keys() == snap["packages"].keys()


def test_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(ParityError) as info:
        load_snapshot(tmp_path / "nope.json")
    assert "nope.json: no such file" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "invalid JSON"),
        ('{"hello": 1}', "not a snapshot"),
        ('{"schema": "parity.bench/1"}', "not a snapshot"),
        ('{"schema": "parity.snapshot/1", "packages": {}}', "section 'meta' missing"),
        ("[1, 2]", "not a snapshot"),
    ],
)
def test_not_a_snapshot_is_refused(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ParityError) as info:
        load_snapshot(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "fix:" in str(info.value)


def test_newer_schema_is_refused(tmp_path, snap):
    newer = dict(snap, schema="parity.snapshot/2")
    with pytest.raises(SnapshotError, match=r"newer parity \(schema parity.snapshot/2"):
        check_snapshot(newer, "x.json")


def test_directory_without_env_json_is_refused(tmp_path):
    with pytest.raises(SnapshotError, match="not a record"):
        load_snapshot(tmp_path)


# --- the interpreter behind --python ---------------------------------------------------------


def test_venv_folder_resolves_to_its_python():
    venv = Path(sys.prefix)
    assert resolve_interpreter(venv).name.startswith("python")


def test_missing_interpreter_is_refused(tmp_path):
    with pytest.raises(SnapshotError, match="no such interpreter"):
        snapshot(python=tmp_path / "bin" / "python")


def test_non_executable_file_is_refused(tmp_path):
    path = tmp_path / "python"
    path.write_text("hello")
    with pytest.raises(SnapshotError, match="not executable"):
        snapshot(python=path)


def test_executable_that_is_not_python_is_refused(tmp_path):
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho 'I am not python' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(SnapshotError, match=r"not a Python interpreter parity can use \(I am not python\)"):
        snapshot(python=script)


def test_binary_garbage_is_refused(tmp_path):
    path = tmp_path / "python"
    path.write_bytes(b"\x00\x01\x02 not an executable format")
    path.chmod(0o755)
    with pytest.raises(SnapshotError, match="Python interpreter"):
        snapshot(python=path)


def test_program_printing_garbage_is_refused(tmp_path):
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho '{\"schema\": 1}'\n")
    script.chmod(0o755)
    with pytest.raises(SnapshotError, match="not a Python interpreter"):
        snapshot(python=script)


def _other_pythons() -> list[Path]:
    """Real interpreters of other versions on this machine (pyenv builds, distro pythons)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(root.glob("versions/*/bin/python")) + sorted(Path("/usr/bin").glob("python3.[0-9]*"))
    return [p for p in found if p.is_file() and not p.name.endswith("-config")]


def _version(python: Path) -> tuple[int, int]:
    out = subprocess.run([str(python), "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.slow
@pytest.mark.parametrize("python", _other_pythons(), ids=str)
def test_collectors_run_in_other_python_versions_or_say_which_is_needed(python):
    if _version(python) >= (3, 7):
        snap = snapshot(python=python, runtime=True)
        jsonschema.Draft202012Validator(load_schema()).validate(snap)
        major, minor = _version(python)
        assert snap["python"]["version"].startswith(f"{major}.{minor}.")
        assert snap["runtime"]["torch"] is None or snap["runtime"]["torch"]["version"]
    else:
        with pytest.raises(SnapshotError, match=r"is Python [23]\.\d+; the collectors need Python 3\.7\+"):
            snapshot(python=python)


def _fake_record(folder: Path, snap: dict) -> Path:
    from parity._io import atomic_dir
    from parity.records.format import finalize_manifest

    with atomic_dir(folder) as tmp:
        (tmp / "env.json").write_text(json.dumps(snap))
        finalize_manifest(tmp, {"capture": "outputs"})
    return folder


def test_record_directory_env_is_checked_against_its_manifest(tmp_path, snap):
    record = _fake_record(tmp_path / "golden", snap)
    assert load_snapshot(record)["packages"].keys() == snap["packages"].keys()
    env = record / "env.json"
    tampered = env.read_text().replace("2.13.0+cpu", "2.13.0+cpX")  # same size: only the hash can tell
    env.write_text(tampered)
    with pytest.raises(ParityError, match=r"env\.json: sha256 does not match"):
        load_snapshot(record)
    env.write_text(tampered[:-1])  # and truncated
    with pytest.raises(ParityError, match=r"env\.json: size"):
        load_snapshot(record)


def test_a_record_directory_is_read_without_importing_parity_records(tmp_path, snap):
    """env sits below records: reading a record's env.json goes through parity._io alone."""
    record = _fake_record(tmp_path / "golden", snap)
    code = ("import sys; from parity.env import load_snapshot; load_snapshot(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith('parity.records')))")
    out = subprocess.run([sys.executable, "-c", code, str(record)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_record_whose_manifest_does_not_list_env_json_is_refused(tmp_path, snap):
    record = tmp_path / "golden"
    record.mkdir()
    (record / "env.json").write_text(json.dumps(snap))
    (record / "manifest.json").write_text(json.dumps({"format": "parity.record", "files": {}}))
    with pytest.raises(ParityError, match=r"env\.json: not in this record"):
        load_snapshot(record)
    (record / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ParityError, match="not a parity record manifest"):
        load_snapshot(record)


def test_a_vendor_folder_inside_site_packages_is_not_an_install_location(monkeypatch, tmp_path):
    """`import ray` appends site-packages/ray/thirdparty_files to sys.path; the packages in it
    are ray's, not the environment's: a fresh interpreter would not list them."""
    site = tmp_path / "lib" / "site-packages"
    vendored = site / "bigpkg" / "thirdparty_files"
    (vendored / "colorama-0.4.6.dist-info").mkdir(parents=True)
    (vendored / "colorama-0.4.6.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: colorama\nVersion: 0.4.6\n")
    (site / "real-1.0.dist-info").mkdir(parents=True)
    (site / "real-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: real\nVersion: 1.0\n")
    monkeypatch.setattr(sys, "path", [str(site), str(vendored)])
    from parity.env._collect import _site_paths, collect_packages

    assert _site_paths() == [str(site)]
    assert list(collect_packages(_site_paths())) == ["real"]
