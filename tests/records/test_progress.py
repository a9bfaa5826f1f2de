"""Long work shows progress on a terminal, and nothing extra under --json or without a
TTY (issue 13 #5): record (batches, bytes written, ETA), verify (batches), bench (calls)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SERVING = '''
import torch
from parity import Pipeline


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(16, 64)
        self.b = torch.nn.Linear(64, 16)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def build():
    g = torch.Generator().manual_seed(0)
    return Pipeline(model=Net().eval(), example_inputs=[torch.randn(16, generator=g) for _ in range(60)],
                    batch_size=4, name="net")
'''

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "OMP_NUM_THREADS": "1"}


def _on_tty(cwd: Path, *args: str) -> tuple[int, str, str]:
    """Run parity with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "parity", *args], cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode("utf-8", "replace")


def _piped(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def _progress_in(text: str) -> bool:
    return any(word in text for word in ("batches", "calls", "ETA", "\x1b[?25"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "serving.py").write_text(SERVING)
    return tmp_path


@pytest.mark.slow
def test_record_shows_batches_bytes_and_eta_on_a_terminal(folder: Path) -> None:
    code, out, tty = _on_tty(folder, "record", "serving.py:build", "-o", "golden", "--capture", "full")
    assert code == 0, tty
    assert "record" in tty and "15/15" in tty and "batches" in tty and "written" in tty and "ETA" in tty
    assert "full capture: the record will take about" in tty
    assert "recorded serving.py:build" in out and "ETA" not in out  # progress never on stdout


@pytest.mark.slow
def test_nothing_extra_without_a_terminal_or_under_json(folder: Path) -> None:
    proc = _piped(folder, "record", "serving.py:build", "-o", "a")
    assert proc.returncode == 0 and proc.stderr == ""
    # Full capture states its size estimate, one line, and nothing else.
    proc = _piped(folder, "record", "serving.py:build", "-o", "b", "--capture", "full")
    assert proc.returncode == 0
    assert proc.stderr.startswith("parity: full capture: the record will take about")
    assert proc.stderr.count("\n") == 1 and "ETA" not in proc.stderr
    code, out, tty = _on_tty(folder, "record", "serving.py:build", "-o", "c", "--capture", "full", "--json")
    assert code == 0 and tty == "" and out.startswith("{")


@pytest.mark.slow
def test_verify_and_bench_show_progress_on_a_terminal_only(folder: Path) -> None:
    assert _piped(folder, "record", "serving.py:build", "-o", "golden", "--bench").returncode == 0
    code, _, tty = _on_tty(folder, "verify", "golden", "--max-slowdown", "1000")
    assert code == 0, tty
    assert "verify" in tty and "15/15" in tty and "batches" in tty
    assert "bench" in tty and "calls" in tty
    # verify names the recorded target it runs (its own line); progress is not there.
    code, out, tty = _on_tty(folder, "verify", "golden", "--json")
    assert code == 0 and out.startswith("{") and not _progress_in(tty)
    proc = _piped(folder, "verify", "golden")
    assert proc.returncode == 0 and not _progress_in(proc.stderr)

    fast = ("--min-time", "0.2", "--min-iters", "5")
    code, _, tty = _on_tty(folder, "bench", "serving.py:build", *fast)
    assert code == 0, tty
    assert "bench" in tty and "calls" in tty and "ETA" in tty
    code, out, tty = _on_tty(folder, "bench", "serving.py:build", *fast, "--json")
    assert code == 0 and tty == "" and out.startswith("{")
    proc = _piped(folder, "bench", "serving.py:build", *fast)
    assert proc.returncode == 0 and proc.stderr == ""


def test_progress_events_from_the_library(tmp_path: Path) -> None:
    import torch

    from parity.benchmark import bench
    from parity.records import record
    from parity.target import Pipeline

    pipe = Pipeline(model=torch.nn.Linear(4, 4), example_inputs=[torch.ones(4)] * 6, batch_size=2)
    events = []
    record(pipe, out=tmp_path / "rec", calibrate=True, snapshot_env=False, progress=events.append)
    assert [(e.task, e.done, e.total) for e in events] == [
        ("record", 1, 3), ("record", 2, 3), ("record", 3, 3),
        ("calibrate", 1, 3), ("calibrate", 2, 3), ("calibrate", 3, 3)]
    assert all(e.notice is None for e in events)  # a stats capture is small: no size notice
    events.clear()
    bench(pipe, min_time=0.0, min_iters=4, max_warmup=2, progress=events.append)
    assert [(e.task, e.done, e.unit) for e in events] == [("bench", n, "calls") for n in range(1, 5)]
    assert all(e.total is not None and e.total >= e.done for e in events)
