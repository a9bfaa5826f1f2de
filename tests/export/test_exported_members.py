"""The public API of parity.export is explicit and pinned."""

from __future__ import annotations

import parity.export


def test_public_members_are_pinned() -> None:
    assert sorted(parity.export.__all__) == sorted(
        ["FORMATS", "METHODS", "CaseResult", "CheckResult", "ExportResult", "Finding", "SubmoduleCheck", "export"])
    for name in parity.export.__all__:
        assert getattr(parity.export, name) is not None


def test_formats_and_suffixes() -> None:
    assert parity.export.FORMATS == {"torchscript": (".pt", ".ts"), "export": (".pt2",), "aoti": (".pt2",),
                                     "onnx": (".onnx",)}
