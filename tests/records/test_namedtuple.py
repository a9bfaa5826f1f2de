"""Named tuples keep their type through a record, without a record choosing code:
PackedSequence and torch.return_types are rebuilt from an allow-list, any other named
tuple as a plain collections.namedtuple with the recorded fields (no import)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from parity.records.flatten import namedtuple_class, rebuild, structure

LSTM_TARGET = '''
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from parity.target import Pipeline

SHIFT = {shift}


class PackedLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 6)
        self.lstm = nn.LSTM(6, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.proj(x), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(padded)


def build():
    torch.manual_seed(0)
    model = PackedLSTM().eval()
    with torch.no_grad():
        model.lstm.weight_hh_l0.add_(SHIFT)
    g = torch.Generator().manual_seed(1)
    rows = [(torch.randn(7, 4, generator=g), torch.tensor(n)) for n in (7, 3, 5, 2)]
    return Pipeline(model=model, example_inputs=rows, batch_size=2, name="packed-lstm")
'''


def _roundtrip(value: Any) -> Any:
    stored: dict[str, torch.Tensor] = {}

    def keep(path: str, t: torch.Tensor) -> str:
        stored[path] = t
        return path

    node = json.loads(json.dumps(structure(value, keep)))  # through JSON, as in a record
    return rebuild(node, stored.__getitem__)


class Out(NamedTuple):
    logits: torch.Tensor
    steps: int


def test_packed_sequence_comes_back_as_itself() -> None:
    x = torch.randn(3, 5, 2)
    packed = pack_padded_sequence(x, torch.tensor([5, 2, 3]), batch_first=True, enforce_sorted=False)
    [back] = _roundtrip((packed,))
    assert type(back) is PackedSequence
    for a, b in zip(packed, back):
        assert (a is None and b is None) or torch.equal(a, b)


def test_torch_return_types_come_back_as_themselves() -> None:
    mx = torch.max(torch.randn(3, 4), dim=0)
    back = _roundtrip(mx)
    assert type(back) is type(mx) and torch.equal(back.values, mx.values) and torch.equal(back.indices, mx.indices)


def test_other_named_tuples_are_rebuilt_with_their_fields_without_import() -> None:
    back = _roundtrip(Out(torch.ones(2), 3))
    assert back._fields == ("logits", "steps") and type(back).__name__ == "Out" and back.steps == 3
    assert type(back) is not Out and torch.equal(back.logits, torch.ones(2))
    node = {"tuple": [{"value": 1}], "namedtuple": {"type": "parity_test_never_imported.Evil", "fields": ["x"]}}
    made = rebuild(node, lambda name: None)
    assert made.x == 1 and type(made).__name__ == "Evil"
    assert "parity_test_never_imported" not in sys.modules


@pytest.mark.parametrize("info, size", [
    ({"type": "os.system", "fields": ["import os"]}, 1),  # not an identifier
    ({"type": "m.T", "fields": ["a", "a"]}, 2),  # repeated field
    ({"type": "m.T", "fields": ["_private"]}, 1),
    ({"type": "m.T", "fields": ["a"]}, 2),  # field count differs from the values
    ({"type": "torch.return_types.max", "fields": []}, 3),  # wrong arity for the real type
    ({"type": "torch.return_types.__class__", "fields": []}, 1),
    ({"type": 5, "fields": []}, 0),
    ("torch.nn.utils.rnn.PackedSequence", 4),
])
def test_malformed_named_tuple_data_is_refused(info: Any, size: int) -> None:
    with pytest.raises(ValueError):
        namedtuple_class(info, size)


def test_lstm_given_a_packed_sequence_replays_and_names_the_lstm(tmp_path: Path) -> None:
    """A changed LSTM weight: replay of ``lstm`` on A's recorded PackedSequence shows the
    LSTM introduces the error (before the fix the input came back a plain tuple, replay
    failed and the root module was named instead)."""
    from parity.comparison.verification import verify
    from parity.records import load_module_inputs, read_record, record

    a_file, b_file = tmp_path / "lstm_a.py", tmp_path / "lstm_b.py"
    a_file.write_text(LSTM_TARGET.format(shift=0.0))
    b_file.write_text(LSTM_TARGET.format(shift=0.05))
    record(f"{a_file}:build", out=tmp_path / "golden", capture="full", snapshot_env=False)
    args, kwargs = load_module_inputs(read_record(tmp_path / "golden"), "lstm#0", 0)
    assert type(args[0]) is PackedSequence and kwargs == {}
    result = verify(tmp_path / "golden", f"{b_file}:build")
    assert result.verdict == "FAIL"
    assert result.first_introducing_layer is not None and result.first_introducing_layer.startswith("lstm#0")
    assert not any("replay failed" in note for row in result.layers for note in row.get("notes", []))
