"""``record --max-size``: a full capture estimates its size after the first batch and
stops, exit 2, before it writes more than the limit, leaving nothing behind (issue 13 #5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from parity.errors import RecordError
from parity.records import budget, record
from parity.records import writer as writer_module
from parity.records.budget import RecordSizeError, parse_size
from parity.target import Pipeline

SERVING = '''
import torch
from parity import Pipeline


class Wide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.Linear(64, 4096)
        self.act = torch.nn.GELU()
        self.down = torch.nn.Linear(4096, 64)

    def forward(self, x):
        return self.down(self.act(self.up(x)))


def build():
    g = torch.Generator().manual_seed(0)
    return Pipeline(model=Wide().eval(), example_inputs=[torch.randn(64, generator=g) for _ in range(80)],
                    batch_size=8, name="wide")
'''


def _serving(tmp_path: Path) -> str:
    (tmp_path / "serving.py").write_text(SERVING)
    return f"{tmp_path / 'serving.py'}:build"


def _pipeline(tmp_path: Path) -> Pipeline:
    from parity.target import load_target

    return load_target(_serving(tmp_path)).pipeline


@pytest.fixture
def handed_to_writer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes of every tensor handed to the activation writer, in order."""
    sizes: list[int] = []
    put = writer_module.ShardWriter.put

    def counting_put(self, name, tensor):
        sizes.append(tensor.numel() * tensor.element_size())
        return put(self, name, tensor)

    monkeypatch.setattr(writer_module.ShardWriter, "put", counting_put)
    return sizes


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "serving.py")


@pytest.mark.parametrize(("text", "size"), [("500M", 500 * 10**6), ("2G", 2 * 10**9), ("1.5GB", 1_500_000_000),
                                            ("700MiB", 700 * 2**20), ("12kb", 12_000), ("4096", 4096),
                                            (" 3 gb ", 3 * 10**9)])
def test_sizes_are_read_as_people_write_them(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "0", "-1G", "2 GiGs", ""])
def test_a_bad_size_is_refused(text: str) -> None:
    with pytest.raises(RecordError, match="--max-size"):
        parse_size(text)


def test_cli_refuses_a_bad_size_before_running(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("record", _serving(tmp_path), "-o", str(tmp_path / "rec"), "--max-size", "lots")
    assert code == 2 and "--max-size lots: not a size" in err


def test_full_capture_over_the_limit_stops_after_the_first_batch(tmp_path: Path, run_cli,
                                                                 handed_to_writer: list[int]) -> None:
    # 10 batches of ~0.5 MB of activations: about 5 MB, against a 2 MB limit.
    code, out, err = run_cli("record", _serving(tmp_path), "-o", str(tmp_path / "rec"), "--capture", "full",
                             "--max-size", "2M")
    assert code == 2 and out == ""
    assert "--max-size" in err and "--capture stats" in err and "--layers" not in err
    assert "stopped after batch 1 of 10" in err and "x 10 batches" in err
    assert _left_behind(tmp_path) == []  # no record, no temporary folder
    assert sum(handed_to_writer) <= 2 * 10**6
    assert sum(handed_to_writer) < 10**6  # one batch's worth: the estimate stopped it, not the wall


def test_a_limit_below_one_batch_stops_inside_it(tmp_path: Path, handed_to_writer: list[int]) -> None:
    with pytest.raises(RecordSizeError, match=r"stopped during batch 1 of 10, before writing past it") as err:
        record(_pipeline(tmp_path), out=tmp_path / "rec", capture="full", max_size=700_000, snapshot_env=False)
    assert err.value.fix and "--capture stats" in err.value.fix
    assert 0 < sum(handed_to_writer) <= 700_000
    assert _left_behind(tmp_path) == []


def test_under_the_limit_the_record_is_written_and_the_estimate_is_close(tmp_path: Path) -> None:
    events = []
    result = record(_pipeline(tmp_path), out=tmp_path / "rec", capture="full", max_size="20M",
                    snapshot_env=False, progress=events.append)
    size = sum(p.stat().st_size for p in (tmp_path / "rec").rglob("*") if p.is_file())
    assert size <= 20 * 10**6 and result.max_size == 20 * 10**6
    # An upper bound, close above: a fixed allowance for env.json and assets.json, and header room.
    assert result.estimated_bytes is not None and size <= result.estimated_bytes <= 1.1 * size + budget.FIXED_BYTES
    notices = [e.notice for e in events if e.notice]
    assert len(notices) == 1 and "full capture: the record will take about" in notices[0]
    assert [e.done for e in events if not e.notice] == list(range(1, 11))
    assert all(e.total == 10 and e.unit == "batches" for e in events)
    written = [e.bytes_written for e in events if not e.notice]
    assert written == sorted(written) and written[-1] <= size


def test_the_record_fits_a_limit_set_to_its_estimate(tmp_path: Path) -> None:
    first = record(_pipeline(tmp_path), out=tmp_path / "a", capture="full", snapshot_env=False)
    assert first.estimated_bytes is not None
    second = record(_pipeline(tmp_path), out=tmp_path / "b", capture="full", snapshot_env=False,
                    max_size=first.estimated_bytes)
    assert second.to_json()["bytes"] <= first.estimated_bytes


def test_default_limit_is_the_free_space_minus_one_gigabyte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           handed_to_writer: list[int]) -> None:
    class Usage:
        free = 10**9 + 1_500_000  # 1.5 MB over the margin

    monkeypatch.setattr(budget.shutil, "disk_usage", lambda where: Usage)
    assert budget.default_max_size(tmp_path)[0] == 1_500_000
    with pytest.raises(RecordSizeError, match=r"the default --max-size, 1.5 MB: the smaller of 20.0 GB and the "
                                              r"free space"):
        record(_pipeline(tmp_path), out=tmp_path / "rec", capture="full", snapshot_env=False)
    assert sum(handed_to_writer) <= 1_500_000 and _left_behind(tmp_path) == []


def test_default_limit_is_at_most_20_gigabytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Usage:
        free = 500 * 10**9

    monkeypatch.setattr(budget.shutil, "disk_usage", lambda where: Usage)
    assert budget.default_max_size(tmp_path)[0] == 20 * 10**9


def test_stats_and_outputs_records_are_bounded_too(tmp_path: Path) -> None:
    pipe = Pipeline(model=torch.nn.Linear(4, 4), example_inputs=[torch.ones(4)] * 8, batch_size=2)
    with pytest.raises(RecordSizeError) as err:
        record(pipe, out=tmp_path / "rec", capture="outputs", max_size=1000, snapshot_env=False)
    assert "--capture stats" not in str(err.value) and "--max-size" in str(err.value)


def test_json_output_carries_the_limit_and_the_estimate(tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli("record", _serving(tmp_path), "-o", str(tmp_path / "rec"), "--capture", "full",
                             "--max-size", "1.5GB", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["max_size"] == 1_500_000_000 and doc["estimated_bytes"] >= doc["bytes"] > 0


@pytest.mark.parametrize("shard_bytes", [50_000, 300_000, writer_module.SHARD_BYTES])
def test_a_limit_one_byte_under_the_real_size_is_refused(tmp_path: Path, shard_bytes: int) -> None:
    # The charges are upper bounds of the bytes on disk, whatever the shard layout.
    pipe = _pipeline(tmp_path)
    done = record(pipe, out=tmp_path / "a", capture="full", snapshot_env=False, shard_bytes=shard_bytes)
    size = sum(p.stat().st_size for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert done.estimated_bytes is not None and done.estimated_bytes >= size
    with pytest.raises(RecordSizeError):
        record(pipe, out=tmp_path / "b", capture="full", snapshot_env=False, shard_bytes=shard_bytes,
               max_size=size - 1)
    assert not (tmp_path / "b").exists()
