"""The public API of parity.exporters is explicit and pinned."""

from __future__ import annotations

import parity.exporters


def test_public_members_are_pinned() -> None:
    assert sorted(parity.exporters.__all__) == sorted(
        ["FORMATS", "METHODS", "CaseResult", "CheckResult", "ExportResult", "Finding", "SubmoduleCheck", "export"])
    for name in parity.exporters.__all__:
        assert getattr(parity.exporters, name) is not None


def test_formats_and_suffixes() -> None:
    assert parity.exporters.FORMATS == {"torchscript": (".pt", ".ts"), "export": (".pt2",), "aoti": (".pt2",),
                                     "onnx": (".onnx",)}
