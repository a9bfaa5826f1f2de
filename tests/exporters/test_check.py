"""parity.exporters.check: cases, tolerances, refusals and submodule replay."""

from __future__ import annotations

import io

import pytest
import torch

from parity.exporters.check import CheckTolerance, check_case, submodule_checks


def test_own_kernel_formats_get_looser_float_defaults_and_ints_stay_exact() -> None:
    assert CheckTolerance.for_format("export", None, None).for_dtype("float32") == (1e-5, 1e-4)
    onnx = CheckTolerance.for_format("onnx", None, None)
    assert onnx.for_dtype("float32") == pytest.approx((1e-4, 1e-3))
    assert onnx.for_dtype("int64") == (0.0, 0.0)
    assert CheckTolerance.for_format("onnx", 0.5, 0.25).for_dtype("float32") == (0.5, 0.25)
    assert "own kernels" in onnx.to_json()["basis"]


def test_a_diverging_artifact_fails_the_case() -> None:
    eager = torch.nn.Identity()
    case = check_case("example", eager, lambda x: x + 1e-3, ["input"], [torch.ones(2, 3)], "single",
                      CheckTolerance())
    assert not case.ok and case.outputs[0].metrics.max_abs == pytest.approx(1e-3, rel=1e-3)


def test_an_artifact_refusing_inputs_is_an_error_not_a_crash() -> None:
    def refuses(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("expected batch 2\nmore detail")

    case = check_case("batch 3", torch.nn.Identity(), refuses, ["input"], [torch.ones(3, 3)], "single",
                      CheckTolerance())
    assert not case.ok and case.error == "the artifact failed on these inputs: RuntimeError: expected batch 2"


def test_inputs_eager_refuses_are_skipped() -> None:
    case = check_case("batch 3", torch.nn.Linear(4, 2), torch.nn.Linear(4, 2), ["input"], [torch.ones(3, 5)],
                      "single", CheckTolerance())
    assert case.ok and case.skipped and "eager refused" in case.skipped


def test_submodule_replay_finds_a_diverging_submodule() -> None:
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(eager, torch.ones(2, 3)), buf)  # only loaded traces can be called per submodule
    buf.seek(0)
    traced = torch.jit.load(buf)
    with torch.no_grad():
        getattr(traced, "0").bias.add_(1.0)  # the artifact's first layer now differs
    checks = {c.module: c.status for c in submodule_checks(eager, traced, "", torch.ones(2, 3), CheckTolerance())}
    assert checks == {"0": "diverged", "1": "match"}


def test_an_in_place_op_after_a_module_does_not_rewrite_its_recorded_output() -> None:
    """conv-bn-ReLU(inplace=True), as in every ResNet: the ReLU rewrites the BatchNorm's
    output tensor; the recorded eager output must be the one BatchNorm returned."""
    torch.manual_seed(0)
    eager = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
    ).eval()
    x = torch.randn(2, 3, 8, 8)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(eager, x), buf)
    buf.seek(0)
    traced = torch.jit.load(buf)
    checks = {c.module: c.status for c in submodule_checks(eager, traced, "", x, CheckTolerance())}
    assert checks == {"0": "match", "1": "match", "2": "match"}
