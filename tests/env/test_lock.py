"""parity lock: exact pins from a snapshot, honest about what it cannot know; round trip."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from parity.env.doctor import doctor
from parity.env.lock import HashSource, LockError, PipDownloadHashes, lock
from parity.env.requirements import parse_requirements

sys.path.insert(0, str(Path(__file__).parent))
from wheelhouse import make_wheel

DATA = Path(__file__).parent / "data" / "requirements"
SNAPSHOT = DATA / "snapshot_research.json"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _snapshot() -> dict:
    return copy.deepcopy(json.loads(SNAPSHOT.read_text()))


def _requirement_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " "))]


# --- what goes into the lock -----------------------------------------------------------------------------


def test_every_distribution_is_pinned_exactly_with_its_local_label():
    result = lock(SNAPSHOT)
    assert _requirement_lines(result.text) == [
        "filelock==3.13.1",
        "huggingface-hub==0.19.4",
        "numpy==1.26.4",
        "nvidia-cublas-cu11==11.11.3.6",
        "pip==23.3.1",
        "regex==2023.10.3",
        "requests==2.31.0",
        "tokenizers==0.15.0",
        "torch==2.1.0+cu118",
        "tqdm==4.66.1",
        "transformers==4.36.2",
        f"vcs-lib @ git+https://git.example.invalid/org/vcs-lib.git@{COMMIT}",
        "wheel-file @ https://files.example.invalid/pkgs/wheel_file-2.0-py3-none-any.whl#sha256="
        + "6" * 64,
    ]


def test_header_names_python_and_platform():
    text = lock(SNAPSHOT).text
    assert "# Valid for CPython 3.11.7, Linux x86_64, glibc 2.35:" in text
    assert (
        '#   python_version == "3.11" and sys_platform == "linux" and platform_machine == "x86_64"'
        in text
    )
    assert "snapshot taken 2026-01-15T10:00:00Z" in text


def test_variant_build_says_the_snapshot_does_not_know_its_index():
    lines = lock(SNAPSHOT).text.splitlines()
    torch = lines.index("torch==2.1.0+cu118")
    assert "+cu118 build" in lines[torch - 1] and "does not record which index" in lines[torch - 1]
    assert "://" not in lines[torch - 1]  # never an invented host


def test_editable_install_is_reported_not_lockable():
    result = lock(SNAPSHOT)
    assert [e.name for e in result.not_lockable] == ["our-app"]
    assert (
        "# not lockable: our-app==0.3.0: editable install from file:///opt/research/src/our-app"
        in result.text
    )
    assert any("our-app" in w and "not lockable" in w for w in result.warnings)


def test_installer_tooling_is_pinned_to_the_release_that_ran(tmp_path):
    """A fresh venv bundles its own pip/setuptools: the lock must rebuild the ones that ran."""
    snap = _snapshot()
    snap["packages"]["setuptools"] = {"name": "setuptools", "version": "84.2.1", "editable": False}
    snap["packages"]["wheel"] = {"name": "wheel", "version": "0.45.1", "editable": False}
    result = lock(snap, out=tmp_path / "tooling.lock")
    active = _requirement_lines(result.text)
    assert {"pip==23.3.1", "setuptools==84.2.1", "wheel==0.45.1"} <= set(active)
    assert not [ln for ln in result.text.splitlines() if ln.startswith("# pip==")]
    pip = next(e for e in result.entries if e.name == "pip")
    assert pip.status == "pinned" and "installer tooling" in pip.notes[0]
    assert sorted(result.to_json()["tooling"]) == ["pip", "setuptools", "wheel"]
    declared = parse_requirements(tmp_path / "tooling.lock").declared("setuptools")
    assert declared.status == "exact" and declared.allows("84.2.1") and not declared.allows("65.5.0")


def test_vcs_without_commit_and_local_directory_are_not_lockable():
    snap = _snapshot()
    snap["packages"]["vcs-lib"]["direct_url"]["vcs_info"].pop("commit_id")
    snap["packages"]["local-dir"] = {
        "name": "local-dir", "version": "1.0", "editable": False,
        "direct_url": {"url": "file:///home/me/local-dir", "dir_info": {}},
    }  # fmt: skip
    result = lock(snap)
    assert sorted(e.name for e in result.not_lockable) == ["local-dir", "our-app", "vcs-lib"]


def test_a_direct_url_with_masked_credentials_is_a_comment_never_an_active_line(tmp_path):
    snap = _snapshot()
    snap["packages"]["wheel-file"]["direct_url"]["url"] = (
        "https://***@files.example.invalid/w/wheel_file-2.0-py3-none-any.whl"
    )
    result = lock(snap)
    assert "whose credentials were masked in the snapshot" in result.text
    assert [e.name for e in result.not_lockable if e.name == "wheel-file"]
    assert not [ln for ln in result.text.splitlines() if "***" in ln and not ln.startswith("#")]


def test_secrets_an_older_snapshot_kept_are_masked_in_the_lock(tmp_path):
    """A snapshot written before path tokens and pip's last-@ split were masked (or edited
    by hand) still never puts a credential into the lock."""
    token = "Zq8Rk2Lm9Tx4Vb7Nw3Yp"
    snap = _with_sources({"extra_index_urls": [_entry(f"https://host.invalid/{token}/org/simple/", "PIP_EXTRA_INDEX_URL")],
                          "index_url": _entry("https://user:p@ss@word@host.invalid/simple/", "/etc/pip.conf [global]")})
    snap["packages"]["wheel-file"]["direct_url"]["url"] = f"https://host.invalid/{token}/w/wheel_file-2.0-py3-none-any.whl"
    text = lock(snap).text
    assert token not in text and "p@ss" not in text and "word@" not in text
    assert "PIP_EXTRA_INDEX_URL" in text and "PIP_INDEX_URL" in text
    assert not [ln for ln in text.splitlines() if "***" in ln and not ln.startswith("#")]


def test_lock_parses_cleanly_and_the_doctor_agrees_with_the_snapshot(tmp_path):
    out = tmp_path / "lock.txt"
    lock(SNAPSHOT, out=out)
    assert parse_requirements(out).problems == []
    report = doctor(out, snapshot=SNAPSHOT)
    # all that remains: the +cu118 pin has no index line (the snapshot cannot say which)
    assert sorted({f.code for f in report.findings}) == ["PD020"]


# --- hashes ----------------------------------------------------------------------------------------------


class FakeHashes(HashSource):
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def hashes(self, pins: Sequence[str]) -> dict[str, list[str]]:
        self.asked = list(pins)
        return self.table


def test_hash_lines_for_pins_and_urls():
    table = {name: [f"sha256:{i:064x}"] for i, name in enumerate(_snapshot()["packages"])}
    source = FakeHashes(table)
    result = lock(SNAPSHOT, hashes=True, hash_source=source)
    assert "torch==2.1.0+cu118" in source.asked and not any("vcs-lib" in p for p in source.asked)
    lines = result.text.splitlines()
    torch = lines.index("torch==2.1.0+cu118 \\")
    assert lines[torch + 1] == f"    --hash={table['torch'][0]}"
    wheel = lines.index(
        "wheel-file @ https://files.example.invalid/pkgs/wheel_file-2.0-py3-none-any.whl \\"
    )
    assert (
        lines[wheel + 1] == "    --hash=sha256:" + "6" * 64
    )  # from the snapshot's PEP 610 archive_info
    assert any("vcs-lib" in w and "cannot hash" in w for w in result.warnings)


def test_missing_hash_is_an_error_not_a_half_lock(tmp_path):
    out = tmp_path / "lock.txt"
    with pytest.raises(LockError, match=r"no file for filelock==3\.13\.1"):
        lock(SNAPSHOT, hashes=True, hash_source=FakeHashes({}), out=out)
    assert not out.exists()


# --- the command -------------------------------------------------------------------------------------------


def test_cli_writes_atomically_and_reports(run_cli, tmp_path):
    out = tmp_path / "lock.txt"
    code, stdout, err = run_cli("lock", SNAPSHOT, "-o", out)
    assert code == 0
    assert stdout == ""
    assert out.read_text() == lock(SNAPSHOT).text
    assert "13 of 14 distributions locked" in err  # pip too
    assert "our-app 0.3.0: not lockable" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock.txt"]  # no temporary left behind


def test_cli_without_output_prints_the_lock(run_cli):
    code, stdout, _ = run_cli("lock", SNAPSHOT)
    assert code == 0
    assert "torch==2.1.0+cu118" in stdout.splitlines()


@pytest.mark.parametrize("content", ["{not json", '{"schema": "something/1"}', ""])
def test_cli_bad_snapshot_exits_2_and_writes_nothing(run_cli, tmp_path, content):
    snap = tmp_path / "snap.json"
    snap.write_text(content)
    out = tmp_path / "lock.txt"
    code, stdout, err = run_cli("lock", snap, "-o", out)
    assert code == 2
    assert "snap.json" in err and "fix:" in err and "Traceback" not in err
    assert not out.exists() and stdout == ""


def test_cli_output_in_a_missing_folder_exits_2(run_cli, tmp_path):
    code, _, err = run_cli("lock", SNAPSHOT, "-o", tmp_path / "nope" / "lock.txt")
    assert code == 2
    assert "output folder does not exist" in err


# --- the round trip: venv -> snapshot -> lock -> fresh venv -> snapshot -> no difference -----------------------


def _isolated_pip_env(wheels: Path) -> dict[str, str]:
    """pip sees only our wheel folder: no configured index, no network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {
        **env,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _venv(path: Path) -> Path:
    # no pip inside: pip runs from this interpreter with --python (seconds instead of ~20)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _pip_install(python: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *args],
        check=True,
        env=env,
    )


@pytest.fixture
def built_env(tmp_path, monkeypatch):
    """A venv holding small packages (a dependency chain, an older-than-newest version, a
    +cpu local build, a wheel installed by URL) and the snapshot parity took of it."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tiny-app", "1.0", ["tiny-dep>=2"])
    make_wheel(wheels, "tiny-dep", "2.0")
    make_wheel(wheels, "tiny-dep", "3.0")  # newer: a lock that drops the pin would take it
    make_wheel(wheels, "tiny-variant", "1.0+cpu")
    direct = make_wheel(tmp_path / "direct", "tiny-url", "0.5")
    env = _isolated_pip_env(wheels)
    for key, value in env.items():
        if key.startswith("PIP_"):
            monkeypatch.setenv(key, value)
    python = _venv(tmp_path / "a")
    _pip_install(python, env, "tiny-app", "tiny-dep==2.0", "tiny-variant==1.0+cpu", direct.as_uri())
    return tmp_path, wheels, env


@pytest.mark.slow
@pytest.mark.parametrize("hashes", [False, True], ids=["plain", "hashes"])
def test_round_trip_lock_rebuilds_the_same_environment(run_cli, built_env, hashes):
    tmp_path, _, env = built_env
    assert (
        run_cli(
            "snapshot", "--python", tmp_path / "a" / "bin" / "python", "-o", tmp_path / "a.json"
        )[0]
        == 0
    )
    args = ["lock", tmp_path / "a.json", "-o", tmp_path / "lock.txt"] + (
        ["--hashes"] if hashes else []
    )
    code, _, err = run_cli(*args)
    assert code == 0, err
    text = (tmp_path / "lock.txt").read_text()
    assert "tiny-dep==2.0" in text and "tiny-variant==1.0+cpu" in text
    assert ("--hash=sha256:" in text) is hashes

    python_b = _venv(tmp_path / "b")
    _pip_install(
        python_b, env, *(["--require-hashes"] if hashes else []), "-r", str(tmp_path / "lock.txt")
    )
    assert run_cli("snapshot", "--python", python_b, "-o", tmp_path / "b.json")[0] == 0
    code, out, _ = run_cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--json")
    packages = [item for item in json.loads(out)["items"] if item["category"] == "package"]
    assert packages == []
    names = set(json.loads((tmp_path / "b.json").read_text())["packages"])
    assert {"tiny-app", "tiny-dep", "tiny-variant", "tiny-url"} <= names


@pytest.mark.slow
def test_pip_download_hashes_are_the_files_sha256(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheel = make_wheel(wheels, "tiny-hash", "1.0+cpu")
    for key, value in _isolated_pip_env(wheels).items():
        monkeypatch.setenv(key, value)
    import hashlib

    assert PipDownloadHashes().hashes(["tiny-hash==1.0+cpu"]) == {
        "tiny-hash": ["sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()]
    }
    with pytest.raises(LockError, match="pip download failed"):
        PipDownloadHashes().hashes(["tiny-hash==9.0"])


@pytest.mark.slow
def test_cli_hashes_unreachable_exits_2_and_writes_nothing(run_cli, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    for key, value in _isolated_pip_env(empty).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "lock.txt"
    code, stdout, err = run_cli("lock", SNAPSHOT, "--hashes", "-o", out)
    assert code == 2
    assert "pip download failed" in err and "fix:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and stdout == ""


def test_doctor_and_lock_import_no_torch():
    code = (
        "import sys; from parity.cli.main import main; "
        f"main(['lock', {str(SNAPSHOT)!r}]); main(['doctor', {str(DATA / 'vision' / 'requirements.txt')!r}, '--json']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("False")


def test_conda_installed_package_gets_a_note():
    snap = _snapshot()
    snap["packages"]["numpy"]["installer"] = "conda"
    lines = lock(snap).text.splitlines()
    assert (
        lines[lines.index("numpy==1.26.4") - 1]
        == "# installed by conda: a pip index may not have this build (or this name)"
    )


# --- index options recorded in the snapshot (package_sources) ----------------------------------------------

CPU_INDEX = "https://index.example.invalid/whl/cpu"


def _with_sources(pip: dict, uv: Optional[dict] = None) -> dict:
    def tool(settings: dict) -> dict:
        return {"index_url": None, "extra_index_urls": [], "find_links": [], "no_index": None,
                "trusted_hosts": [], "files": [], "errors": [], **settings}  # fmt: skip

    snap = _snapshot()
    snap["package_sources"] = {"pip": tool(pip), "uv": tool(uv or {})}
    return snap


def _entry(value: Any, source: str) -> dict:
    return {"value": value, "source": source}


def test_recorded_index_options_go_at_the_top_each_after_its_origin():
    snap = _with_sources(
        {"extra_index_urls": [_entry(CPU_INDEX, "PIP_EXTRA_INDEX_URL")],
         "find_links": [_entry("file:///srv/wheels", "/etc/pip.conf [install]")]},
        {"index_url": _entry("file:///uv-mirror", "/root/.config/uv/uv.toml [pip]"),
         "extra_index_urls": [_entry(CPU_INDEX, "UV_INDEX")]},  # the same URL once only
    )  # fmt: skip
    result = lock(snap)
    lines = result.text.splitlines()
    first_pin = lines.index("filelock==3.13.1")
    options = [ln for ln in lines[:first_pin] if ln.startswith("--")]
    assert options == [f"--extra-index-url {CPU_INDEX}", "--find-links file:///srv/wheels", "--index-url file:///uv-mirror"]
    assert lines[lines.index(options[0]) - 1] == "# from PIP_EXTRA_INDEX_URL (pip)"
    assert lines[lines.index(options[1]) - 1] == "# from /etc/pip.conf [install] (pip)"
    assert lines[lines.index(options[2]) - 1] == "# from /root/.config/uv/uv.toml [pip] (uv)"
    note = lines[lines.index("torch==2.1.0+cu118") - 1]
    assert "+cu118 build" in note and "lines above" in note and "does not record" not in note
    assert [s["option"] for s in result.to_json()["sources"]] == ["--extra-index-url", "--find-links", "--index-url"]


def test_masked_credentials_become_a_comment_saying_how_to_supply_them():
    masked = "https://***@index.example.invalid/whl/cu118"
    result = lock(_with_sources({"extra_index_urls": [_entry(masked, "/root/.pip/pip.conf [global]")]}))
    assert not [ln for ln in result.text.splitlines() if ln.startswith("--")]  # no line with *** in it
    comment = [ln for ln in result.text.splitlines() if masked in ln]
    assert comment and comment[0].startswith("# --extra-index-url") and "masked" in comment[0]
    assert "PIP_EXTRA_INDEX_URL=" in result.text
    note = result.text.splitlines()[result.text.splitlines().index("torch==2.1.0+cu118") - 1]
    assert "credentials" in note and "supply them" in note
    assert any("masked" in w for w in result.warnings)


def test_sources_that_cannot_serve_a_variant_keep_the_cannot_know_note():
    snap = _with_sources({"index_url": _entry("file:///mirror/simple", "PIP_INDEX_URL")})
    lines = lock(snap).text.splitlines()
    assert "--index-url file:///mirror/simple" in lines  # still written: it is where pip looked
    note = lines[lines.index("torch==2.1.0+cu118") - 1]
    assert "does not record which index" in note and "://" not in note
    empty = lock(_with_sources({})).text
    assert "records no pip/uv index configuration" in empty and "add the --extra-index-url" in empty


def test_no_index_and_trusted_host_are_written_too():
    snap = _with_sources({"no_index": _entry(True, "PIP_NO_INDEX"), "find_links": [_entry("/srv/wheels", "PIP_FIND_LINKS")],
                          "trusted_hosts": [_entry("index.example.invalid", "/etc/pip.conf [global]")]})  # fmt: skip
    options = [ln for ln in lock(snap).text.splitlines() if ln.startswith("--")]
    assert options == ["--find-links /srv/wheels", "--no-index", "--trusted-host index.example.invalid"]


def test_lock_with_recorded_sources_parses_and_the_doctor_has_nothing_left(tmp_path):
    out = tmp_path / "lock.txt"
    snap = _with_sources({"extra_index_urls": [_entry(CPU_INDEX, "PIP_EXTRA_INDEX_URL")]})
    lock(snap, out=out)
    assert parse_requirements(out).problems == []
    assert parse_requirements(out).option_values("--extra-index-url") == [CPU_INDEX]
    assert doctor(out, snapshot=snap).findings == []  # the +cu118 pin now has its index line


def test_cli_malformed_package_sources_exits_2_and_writes_nothing(run_cli, tmp_path):
    snap = _snapshot()
    snap["package_sources"] = {"pip": {"find_links": "/srv/wheels"}}
    (tmp_path / "snap.json").write_text(json.dumps(snap))
    code, stdout, err = run_cli("lock", tmp_path / "snap.json", "-o", tmp_path / "lock.txt")
    assert code == 2 and stdout == ""
    assert "snap.json: package_sources pip.find_links" in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "lock.txt").exists()


@pytest.mark.slow
def test_round_trip_installs_from_the_lock_alone_with_its_recorded_sources(run_cli, built_env):
    """The snapshot recorded PIP_NO_INDEX and PIP_FIND_LINKS: the lock carries them, so
    a pip with no configuration at all rebuilds the environment, +cpu build included."""
    tmp_path, wheels, env = built_env
    assert run_cli("snapshot", "--python", tmp_path / "a" / "bin" / "python", "-o", tmp_path / "a.json")[0] == 0
    assert run_cli("lock", tmp_path / "a.json", "-o", tmp_path / "lock.txt")[0] == 0
    text = (tmp_path / "lock.txt").read_text()
    assert f"--find-links {wheels}" in text.splitlines() and "--no-index" in text.splitlines()
    bare = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    bare["PIP_CONFIG_FILE"] = os.devnull  # no index configured anywhere but in the lock
    python_b = _venv(tmp_path / "b")
    _pip_install(python_b, bare, "-r", str(tmp_path / "lock.txt"))
    assert run_cli("snapshot", "--python", python_b, "-o", tmp_path / "b.json")[0] == 0
    _, out, _ = run_cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--json")
    assert [i for i in json.loads(out)["items"] if i["category"] in ("package", "package_source")] == []
