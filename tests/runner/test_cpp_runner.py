"""Acceptance (issue 19): artifacts run in the C++ runner, with no Python in the process,
and match eager: MiniLM as TorchScript, the conv net as an AOTInductor package."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
from runner_testing import CONV, TINY, python_mappings

from parity.comparison.metrics import compare_tensors
from parity.exporters.check import CheckTolerance
from parity.runner import RunnerProcess, cpp_target, run_artifact, time_artifact

pytestmark = pytest.mark.slow

SENTENCES = ["A short one.", "The quick brown fox jumps over the lazy dog near the river bank.", "Hi",
             "parity checks that exported models match eager PyTorch.", "Seven", "Sixth line, a bit longer here."]


def _eager(spec: str, x: torch.Tensor) -> torch.Tensor:
    from parity.target import load_target

    with torch.no_grad():
        return load_target(spec).pipeline.model(x)


def test_conv_net_as_aoti_runs_in_cpp_and_matches_eager(conv_aoti: Path) -> None:
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(3))  # exported with batch 2
    got = run_artifact(conv_aoti, {"input": x})
    assert list(got) == ["output"] and got["output"].shape == (5, 10)
    atol, rtol = CheckTolerance.for_format("aoti", None, None).for_dtype("torch.float32")
    metrics = compare_tensors(_eager(CONV, x), got["output"], atol, rtol)
    assert metrics.ok, metrics.to_json()
    assert not torch.equal(got["output"], torch.zeros_like(got["output"]))


def test_minilm_torchscript_check_cpp_matches_eager_on_other_shapes(run_cli, minilm_dir: Path,
                                                                   tmp_path: Path) -> None:
    inputs = tmp_path / "sentences.txt"
    inputs.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "minilm.pt"
    code, stdout, err = run_cli("export", minilm_dir, "--format", "torchscript", "-o", out, "--inputs", inputs,
                                "--check-cpp", "--json")
    assert code == 0, err[-2000:]
    doc = json.loads(stdout)
    cpp = doc["check_cpp"]
    assert cpp["passed"] and cpp["runner"] == "cpp" and cpp["libpython_mapped"] is False
    shapes = {tuple(c["shapes"]["input_ids"]) for c in cpp["cases"]}
    example = tuple(cpp["cases"][0]["shapes"]["input_ids"])
    assert any(b != example[0] and s != example[1] for b, s in shapes), shapes  # another batch and length
    names = {o["name"] for c in cpp["cases"] for o in c["outputs"]}
    assert {"last_hidden_state", "pooler_output"} <= names
    assert all(o["metrics"]["numel"] > 0 for c in cpp["cases"] for o in c["outputs"])


def test_the_runner_process_has_no_python_interpreter(conv_aoti: Path, runner_exe: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    ours = python_mappings(Path("/proc/self/maps").read_text())
    assert ours, "the check must see the interpreter of this (Python) process"
    save_file({"input": torch.randn(2, 3, 32, 32)}, str(tmp_path / "in.safetensors"))
    proc = subprocess.Popen([str(runner_exe), "--format", "aoti", "--model", str(conv_aoti), "--inputs",
                             str(tmp_path / "in.safetensors"), "--threads", "2", "--seconds", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = ""
    deadline = time.monotonic() + 60
    while "libtorch_cpu" not in maps and time.monotonic() < deadline and proc.poll() is None:
        maps = Path(f"/proc/{proc.pid}/maps").read_text()  # read while it serves requests
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "libtorch_cpu" in maps and "libc10" in maps
    assert python_mappings(maps) == []
    report = json.loads(stdout)
    assert report["libpython_mapped"] is False and report["timing"]["requests"] > 0


def test_timing_mode_reports_every_request_from_every_thread(tiny_ts: Path) -> None:
    x = torch.randn(4, 4)
    timing = time_artifact(tiny_ts, ["input"], [x], threads=2, seconds=None, iterations=60, warmup=2)
    doc = timing.to_json()
    assert doc["requests"] == 60 and doc["threads"] == 2 and doc["batch_size"] == 4
    assert all(s > 0 for s in doc["samples"]) and doc["p50"] <= doc["p99"]
    assert doc["items_per_s"] > 0 and doc["libpython_mapped"] is False


def test_cpp_target_is_a_pipeline_like_the_python_artifact(tiny_ts: Path) -> None:
    from parity.target import load_target

    cpp = cpp_target(tiny_ts)
    python = load_target(str(tiny_ts))
    assert cpp.kind == "torchscript+cpp" and len(cpp.pipeline.example_inputs) == 3
    batch = cpp.pipeline.preprocess(list(cpp.pipeline.example_inputs))
    with torch.no_grad():
        assert torch.equal(cpp.pipeline.model(batch), python.pipeline.model(batch))
    assert torch.equal(cpp.pipeline.model(batch), _eager(TINY, batch))


def test_strict_safetensors_reader_refuses_bad_files_and_keeps_serving(tiny_ts: Path, tmp_path: Path) -> None:
    from safetensors.torch import save

    good = save({"input": torch.randn(2, 4)})
    header_len = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + header_len])
    body = good[8 + header_len:]

    def file_with(name: str, head: dict | bytes, data: bytes = body, length: int | None = None) -> str:
        raw = head if isinstance(head, bytes) else json.dumps(head).encode()
        path = tmp_path / name
        path.write_bytes((len(raw) if length is None else length).to_bytes(8, "little") + raw + data)
        return str(path)

    bad = {
        "short.st": (str(tmp_path / "short.st"), "shorter than 8 bytes"),
        "len": (file_with("len.st", header, length=1 << 40), "header length"),
        "json": (file_with("json.st", b'{"input": {"dtype": "F32",'), "invalid JSON header"),
        "offsets": (file_with("off.st", {"input": {**header["input"], "data_offsets": [0, 4096]}}),
                    "data_offsets outside the file"),
        "size": (file_with("size.st", {"input": {**header["input"], "shape": [3, 4]}}), "shape and dtype need"),
        "dtype": (file_with("dtype.st", {"input": {**header["input"], "dtype": "C64"}}), "unsupported dtype"),
        "tail": (file_with("tail.st", header, body + b"junk"), "bytes after the last tensor"),
        "name": (file_with("name.st", {"other": header["input"]}), "has no tensor \"input\""),
    }
    (tmp_path / "short.st").write_bytes(b"\x01\x02")
    with RunnerProcess(tiny_ts) as proc:
        for key, (path, reason) in bad.items():
            reply = _raw_request(proc, path, str(tmp_path / f"{key}.out"))
            assert reply["ok"] is False and reason in reply["error"], (key, reply)
        out = proc.run(["input"], [torch.ones(2, 4)])  # still serving
        assert out[0][0] == "output" and out[0][1].shape == (2, 2)


def _raw_request(proc: RunnerProcess, src: str, dst: str) -> dict:
    proc._proc.stdin.write(f"{src}\t{dst}\tinput\n")
    proc._proc.stdin.flush()
    return proc._reply()


def test_bench_runner_cpp_times_each_concurrency_level(run_cli, tiny_ts: Path) -> None:
    code, stdout, err = run_cli("bench", tiny_ts, "--runner", "cpp", "--concurrency", "1,2", "--duration", "300ms",
                                "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["schema"] == "parity.runner-bench/1" and doc["batch_size"] == 3
    assert [lv["threads"] for lv in doc["levels"]] == [1, 2]
    assert all(lv["requests"] > 0 and lv["p50"] > 0 and not lv["libpython_mapped"] for lv in doc["levels"])


def test_verify_runner_cpp_records_b_in_the_cpp_runner(run_cli, tiny_ts: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from parity.records import record

    record(str(tiny_ts), out=tmp_path / "a")
    started: list[int] = []
    original = RunnerProcess.__init__

    def spy(self: RunnerProcess, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        started.append(self.pid)

    monkeypatch.setattr(RunnerProcess, "__init__", spy)
    code, stdout, err = run_cli("verify", tmp_path / "a", tiny_ts, "--runner", "cpp", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["verdict"] == "PASS" or doc["verdict"].startswith("PASS"), doc["verdict"]
    assert all(s["status"] == "match" for s in doc["stages"]), doc["stages"]
    assert len(started) == 1  # B's model ran in one runner process
    code, _, err = run_cli("verify", tmp_path / "a", "--runner", "cpp")
    assert code == 2 and "--runner cpp needs TARGET" in err


_SCRIPTED = '''
import torch
from torch import nn
from typing import Dict, Tuple
from parity.target import Pipeline


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
        y = self.fc(x) * scale
        return {"pair": (y, y.sum(-1)), "twice": (y * 2, (y > 0).long())}


def build() -> Pipeline:
    torch.manual_seed(0)
    rows = [{"x": torch.randn(4), "scale": torch.tensor([float(i + 1)])} for i in range(3)]
    return Pipeline(model=Nested().eval(), example_inputs=rows, batch_size=3, name="nested")
'''


def test_scripted_keyword_model_with_nested_outputs(run_cli, runner_exe: Path, tmp_path: Path) -> None:
    """A scripted model keeps forward(x, scale): the runner passes inputs by name and
    flattens the dict of tuples into parity's names (pair.0, twice.1...)."""
    model = tmp_path / "nested_model.py"
    model.write_text(_SCRIPTED)
    code, stdout, err = run_cli("export", f"{model}:build", "--format", "torchscript", "--method", "script",
                                "-o", tmp_path / "nested.pt", "--check-cpp", "--json")
    assert code == 0, err[-2000:]
    cpp = json.loads(stdout)["check_cpp"]
    assert cpp["passed"]
    names = [o["name"] for o in cpp["cases"][0]["outputs"]]
    assert names == ["pair.0", "pair.1", "twice.0", "twice.1"]
    assert not cpp["cases"][0]["missing"]
