"""Tolerance policy: dtype defaults, global values, glob overrides, noise floor."""

from __future__ import annotations

import pytest

from parity.comparison.tolerances import (
    TolerancePolicy,
    default_tolerance,
    policy_from,
    strip_wrapper_prefix,
)
from parity.errors import ParityError


def test_dtype_defaults() -> None:
    assert default_tolerance("float32") == (1e-5, 1e-4)
    assert default_tolerance("torch.float16")[0] > 1e-5
    assert default_tolerance("bfloat16")[0] > default_tolerance("float16")[0]
    assert default_tolerance("int64") == (0.0, 0.0)
    assert default_tolerance("bool") == (0.0, 0.0)


def test_override_by_glob_matches_with_and_without_wrapper_prefix() -> None:
    policy = TolerancePolicy(overrides={"encoder.layer.*#0/out": {"atol": 1e-3}})
    assert policy.for_layer("encoder.layer.3#0/out", "float32").atol == 1e-3
    assert policy.for_layer("module.encoder.layer.3#0/out", "float32").atol == 1e-3
    assert policy.for_layer("pooler#0/out", "float32").atol == 1e-5


def test_noise_floor_raises_never_lowers() -> None:
    policy = TolerancePolicy(atol=1e-4)
    assert policy.for_layer("x#0/out", "float32", noise_floor=1e-3).atol == 1e-3
    assert policy.for_layer("x#0/out", "float32", noise_floor={"max_abs": 1e-7}).atol == 1e-4
    assert policy.for_layer("x#0/out", "float32", noise_floor=1e-3).source == "noise floor"


def test_integer_layers_stay_exact_whatever_the_global_tolerance() -> None:
    tol = TolerancePolicy(atol=1.0, rtol=1.0).for_layer("emb#0/out", "int64", noise_floor=5.0)
    assert (tol.atol, tol.rtol) == (0.0, 0.0)


def test_caller_values_win_over_the_records() -> None:
    policy = policy_from({"atol": 1e-3, "rtol": 1e-2, "overrides": {"a*": {"atol": 1.0}}}, 1e-6, None, {"b*": {}})
    assert policy.atol == 1e-6 and policy.rtol == 1e-2 and set(policy.overrides) == {"a*", "b*"}


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "x"])
def test_bad_tolerance_is_a_user_error(bad: object) -> None:
    with pytest.raises(ParityError, match="not a tolerance"):
        TolerancePolicy(atol=bad)  # type: ignore[arg-type]


def test_bad_override_shape_is_a_user_error() -> None:
    with pytest.raises(ParityError, match="override"):
        TolerancePolicy(overrides={"x": {"tol": 1}})


@pytest.mark.parametrize(
    ("key", "bare"),
    [("module._orig_mod.enc#0/out", "enc#0/out"), ("module#0/out", "#0/out"), ("modules.x#0", "modules.x#0")],
)
def test_strip_wrapper_prefix(key: str, bare: str) -> None:
    assert strip_wrapper_prefix(key) == bare
