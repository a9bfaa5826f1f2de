"""What replaying B's modules finds besides introduced/inherited: API changes and containers.

The models live in this file; each ``build_*`` function is a TARGET (``this file:build_x``),
so A and B differ exactly as written here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from parity.comparison import verify
from parity.comparison.result import FAIL
from parity.records import record

HERE = Path(__file__).resolve()


class BlockA(nn.Module):
    """A's block: ``forward(x, cache_length=None)`` (the library version A ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, cache_length: int | None = None) -> torch.Tensor:
        y = self.fc(x)
        return y * (1.0 + 0.01 * cache_length) if cache_length is not None else y


class BlockB(nn.Module):
    """B's block: the new library removed ``cache_length`` (and scales no more)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Net(nn.Module):
    def __init__(self, block: nn.Module, pass_cache_length: bool) -> None:
        super().__init__()
        self.block, self.head = block, nn.Linear(8, 2)
        self.pass_cache_length = pass_cache_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x, cache_length=4) if self.pass_cache_length else self.block(x)
        return self.head(torch.tanh(y))


def build_a() -> nn.Module:
    torch.manual_seed(0)
    return Net(BlockA(), pass_cache_length=True).eval()


def build_b() -> nn.Module:
    torch.manual_seed(0)
    return Net(BlockB(), pass_cache_length=False).eval()


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(8, 8)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.intermediate = Inner()
        self.out = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.intermediate(x)) + x


class Deep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Layer() for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def build_deep() -> nn.Module:
    torch.manual_seed(0)
    return Deep().eval()


def build_deep_changed() -> nn.Module:
    model = build_deep()
    with torch.no_grad():
        model.layers[1].intermediate.dense.weight[2, 3] += 0.1
    return model


def _inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(8, generator=g) for _ in range(4)]


def _golden(tmp_path: Path, build: str) -> Path:
    out = tmp_path / "golden"
    record(f"{HERE}:{build}", _inputs(), out=out, capture="full", batch_size=2, snapshot_env=False)
    return out


def test_removed_keyword_argument_is_an_api_change_finding(tmp_path: Path, run_cli: Any) -> None:
    r = verify(_golden(tmp_path, "build_a"), f"{HERE}:build_b")
    assert r.verdict == FAIL
    (change,) = r.api_changes
    assert change["message"] == "B's `BlockB.forward` no longer accepts `cache_length` (A passed it)"
    assert change["module"] == "block" and change["argument"] == "cache_length"
    assert not any("TypeError" in n for n in r.notes), r.notes
    assert "no longer accepts `cache_length`" in r.reason
    assert r.probable_cause is not None and r.probable_cause["kind"] == "api_change"
    assert r.probable_cause["subject"] == "BlockB.forward"
    root = next(x for x in r.layers if x["key"] == "#0/out")
    assert root["contains"] == "block#0/out" and root["introduced"] is None  # the model around it, not a cause
    code, out, _err = run_cli("verify", tmp_path / "golden", f"{HERE}:build_b")
    assert code == 1 and "no longer accepts `cache_length` (A passed it)" in out and "TypeError" not in out


def test_a_type_error_inside_forward_is_not_an_api_change() -> None:
    from parity.comparison.replay import signature_refusal

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor, cache_length: int = 0) -> torch.Tensor:
            return x + "text"  # type: ignore[operator]

    assert signature_refusal(Broken(), (torch.ones(1),), {"cache_length": 3}) is None
    refused = signature_refusal(BlockB(), (torch.ones(8), torch.ones(8)), {})
    assert refused is not None and refused["problem"] == "positional"
    assert "takes 1 positional argument(s), A passed 2" in refused["message"]

    class NeedsMask(nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return x * mask

    refused = signature_refusal(NeedsMask(), (torch.ones(1),), {})
    assert refused is not None and refused["message"] == "B's `NeedsMask.forward` now requires `mask` (A did not pass it)"


def test_containers_of_the_introducing_module_contain_it(tmp_path: Path) -> None:
    r = verify(_golden(tmp_path, "build_deep"), f"{HERE}:build_deep_changed")
    dense = "layers.1.intermediate.dense#0/out"
    assert r.first_introducing_layer == dense
    rows = {x["key"]: x for x in r.layers}
    for container in ("layers.1.intermediate#0/out", "layers.1#0/out", "#0/out"):
        assert rows[container]["status"] == "diverged", container
        assert rows[container]["introduced"] is not True and rows[container]["contains"] == dense, rows[container]
    assert [x["key"] for x in r.layers if x["introduced"] is True] == [dense]
    assert rows["layers.2.intermediate.dense#0/out"]["introduced"] is False  # fed a different input: inherits
    cause = r.probable_cause
    assert cause is not None and cause["kind"] == "weight" and cause["subject"] == "layers.1.intermediate.dense.weight"
    assert cause["confidence"] == "high"


class Hostile(nn.Module):
    """Submodule names holding a clear-screen and an OSC-8 link, as a hostile record would."""

    CLEAR, LINK, CSI = "x\x1b[2J", "y\x1b]8;;http://evil/x\x1b\\click\x1b]8;;\x1b\\", "z\x9b2J"

    def __init__(self) -> None:
        super().__init__()
        for name in (self.CLEAR, self.LINK, self.CSI):
            self.add_module(name, nn.Linear(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in (self.CLEAR, self.LINK, self.CSI):
            x = getattr(self, name)(x)
        return x


def build_hostile() -> nn.Module:
    torch.manual_seed(0)
    return Hostile().eval()


def build_hostile_changed() -> nn.Module:
    model = build_hostile()
    with torch.no_grad():
        getattr(model, Hostile.CLEAR).weight[0, 0] += 0.5
    return model


def test_escape_sequences_in_module_names_never_reach_the_terminal(tmp_path: Path, run_cli: Any) -> None:
    golden = tmp_path / "golden"
    g = torch.Generator().manual_seed(2)
    record(f"{HERE}:build_hostile", [torch.randn(4, generator=g) for _ in range(4)], out=golden, capture="full",
           batch_size=2, snapshot_env=False)
    code, out, err = run_cli("verify", golden, f"{HERE}:build_hostile_changed")
    assert code == 1, err
    assert "x\\x1b[2J" in out  # the name is shown, its control characters as visible escapes
    assert "\x1b" not in out + err and "\x9b" not in out + err
    code, out, _err = run_cli("verify", golden, f"{HERE}:build_hostile_changed", "--json")
    doc = json.loads(out)
    assert doc["probable_cause"]["subject"] == "x\\x1b[2J.weight"  # the cause is text for people: made safe too

