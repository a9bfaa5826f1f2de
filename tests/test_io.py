from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from parity._io import (
    add_stale_hook,
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    read_json,
    remove_stale_hook,
    remove_stale_temporaries,
)
from parity.errors import ParityError


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
        with atomic_dir(tmp_path / "rec") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "rec").stat().st_mode) == 0o755


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "rec") as d:
        (d / "x").write_text("1")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_unless_overwrite(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "old").write_text("old")
    with pytest.raises(ParityError, match="already exists"), atomic_dir(tmp_path / "rec"):
        pass
    with atomic_dir(tmp_path / "rec", overwrite=True) as d:
        (d / "new").write_text("new")
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_read_json_errors_are_one_line(tmp_path):
    with pytest.raises(ParityError, match="no such file"):
        read_json(tmp_path / "missing.json", "a snapshot")
    (tmp_path / "bad.json").write_bytes(b"\xff\x00")
    with pytest.raises(ParityError, match="not a snapshot"):
        read_json(tmp_path / "bad.json", "a snapshot")
    atomic_write_json(tmp_path / "ok.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "ok.json", "x") == {"a": [1, 2], "b": 1}


# ------------------------------------------------------------------ output paths


@pytest.mark.parametrize("writer", ["file", "dir"])
@pytest.mark.parametrize("place", ["/proc/parity-x", "/sys/parity-x", "missing/parent/x", "a-file/x"])
def test_unwritable_output_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, writer, place):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ParityError) as info:
        if writer == "file":
            atomic_write_text(place, "x")
        else:
            with atomic_dir(place) as d:
                (d / "x").write_text("1")
    message = str(info.value)
    assert "\n" not in message and (place in message or str(Path(place).parent) in message)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_file_output_naming_a_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ParityError, match="is a folder"):
        atomic_write_json(tmp_path / "out", {"a": 1})
    assert list((tmp_path / "out").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_full_disk_inside_atomic_dir_is_a_parity_error(tmp_path):
    with pytest.raises(ParityError, match=r"rec: cannot write here \(No space left"), atomic_dir(tmp_path / "rec"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_a_bug_inside_atomic_dir_keeps_its_type(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_dir(tmp_path / "rec"):
        open(tmp_path / "no-such-input")  # noqa: SIM115 - a reader's bug, not the output's place
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ stale temporaries

_CHILD = r"""
import sys, time
from parity._io import atomic_dir
with atomic_dir(sys.argv[1]) as d:
    (d / "part").write_bytes(b"x" * 1000)
    print("inside", flush=True)
    time.sleep(600)
"""


def _child_inside_atomic_dir(final: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(final)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    return proc


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def test_temporary_of_a_killed_run_is_removed_by_the_next_write_and_reported(tmp_path):
    final = tmp_path / "rec"
    proc = _child_inside_atomic_dir(final)
    proc.kill()  # kill -9: no cleanup runs in the child
    proc.wait()
    [left] = _temporaries(tmp_path)
    assert left.startswith(".rec.") and f"-{proc.pid}-" in left  # the temporary names its owner
    seen: list[Path] = []
    add_stale_hook(seen.append)
    try:
        with atomic_dir(final) as d:
            (d / "x").write_text("1")
    finally:
        remove_stale_hook(seen.append)
    assert seen == [tmp_path / left]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_temporary_of_a_live_run_is_kept(tmp_path):
    final = tmp_path / "rec"
    proc = _child_inside_atomic_dir(final)
    try:
        [left] = _temporaries(tmp_path)
        assert remove_stale_temporaries(final) == []
        with atomic_dir(tmp_path / "rec", overwrite=True) as d:
            (d / "x").write_text("1")
        assert left in _temporaries(tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_reused_pid_other_host_and_unowned_temporaries(tmp_path):
    from parity._io import _host_and_boot, _start_time

    host, boot = _host_and_boot()
    me, started = os.getpid(), _start_time(os.getpid())
    target = tmp_path / "out.json"
    names = {
        "reused": f".out.json.{host}-{boot}-{me}-{started + 1}.abc.tmp",  # my pid, another start: dead
        "rebooted": f".out.json.{host}-{'f' * 8 if boot != 'f' * 8 else 'e' * 8}-{me}-{started}.abd.tmp",
        "mine": f".out.json.{host}-{boot}-{me}-{started}.abe.tmp",  # this live process
        "other_host": f".out.json.{'0' * 8 if host != '0' * 8 else '1' * 8}-{boot}-999999-1.abf.tmp",
        "unowned": ".out.json.zq3k9x_1.tmp",  # an older parity's temporary: owner unknown
        "other_file": f".out.json.x.{host}-{boot}-999999-1.abg.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_text("partial")
    removed = {p.name for p in remove_stale_temporaries(target)}
    assert removed == {names["reused"], names["rebooted"]}
    atomic_write_json(target, {"a": 1})
    assert {p.name for p in tmp_path.iterdir()} == {"out.json"} | (set(names.values()) - removed)


def test_commands_refuse_bad_output_places_in_one_line(run_cli, tmp_path, monkeypatch):
    """snapshot, lock, record and --html all write through the atomic helpers."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    snap = tmp_path / "snap.json"
    assert run_cli("snapshot", "-o", snap)[0] == 0
    model = tmp_path / "model.py"
    model.write_text("import torch\nfrom parity.target import Pipeline\n\ndef build():\n"
                     "    return Pipeline(model=torch.nn.Linear(2, 2), example_inputs=[torch.ones(2)])\n")
    assert run_cli("record", f"{model}:build", "-o", "golden")[0] == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (("lock", snap, "-o", "/proc/parity-x"), ("lock", snap, "-o", "folder"),
                 ("record", f"{model}:build", "-o", "/proc/parity-rec"), ("snapshot", "-o", "/sys/parity-x"),
                 ("verify", "golden", f"{model}:build", "--html", "/proc/parity-x.html"),
                 ("verify", "golden", f"{model}:build", "--html", "folder")):
        code, _, err = run_cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert str(args[-1]) in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and list((tmp_path / "folder").iterdir()) == []
