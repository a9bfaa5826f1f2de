from __future__ import annotations

import pytest

from parity.env.risk import (
    LEVELS,
    RISK_TABLE,
    STAGES,
    level_rank,
    package_risk,
    risk_for,
)
from parity.env.snapshots import canonical_name


@pytest.mark.parametrize(
    ("name", "level", "stage"),
    [
        ("torch", "high", "model"),
        ("nvidia-cublas-cu12", "high", "model"),
        ("nvidia_cudnn_cu12", "high", "model"),
        ("mkl", "high", "model"),
        ("scipy-openblas64", "high", "model"),
        ("tokenizers", "high", "preprocess"),
        ("sentencepiece", "high", "preprocess"),
        ("transformers", "high", "model"),
        ("Pillow", "high", "preprocess"),
        ("opencv_python_headless", "high", "preprocess"),
        ("torchvision", "high", "preprocess"),
        ("numpy", "high", "preprocess"),
    ],
)
def test_known_packages_have_their_risk_and_stage(name, level, stage):
    risk = package_risk(name)
    assert risk.level == level
    assert stage in risk.stages
    assert risk.reason


def test_transformers_touches_preprocess_and_model():
    assert {"preprocess", "model"} <= set(package_risk("transformers").stages)


def test_unknown_package_is_low_with_a_reason():
    risk = package_risk("left-pad")
    assert (risk.level, risk.stages) == ("low", ())
    assert "not known" in risk.reason


@pytest.mark.parametrize(
    ("category", "name", "level"),
    [
        ("platform", "glibc", "medium"),
        ("platform", "machine", "high"),
        ("python", "version", "medium"),
        ("cpu", "flag.avx512f", "high"),
        ("cpu", "flag.amx_tile", "high"),
        ("cpu", "flag.sse4_2", "medium"),
        ("cpu", "logical_cores", "medium"),
        ("torch", "cuda", "high"),
        ("gpu", "driver_version", "high"),
        ("runtime", "threadpool.blas:openblas:numpy/libscipy_openblas.version", "high"),
        ("runtime", "threadpool.blas:openblas:numpy/libscipy_openblas.num_threads", "medium"),
        ("runtime", "threadpool.blas:mkl:env/libmkl_rt", "high"),
        ("runtime", "torch.num_threads", "medium"),
        ("runtime", "torch.float32_matmul_precision", "high"),
        ("runtime", "torch.cudnn_version", "high"),
        ("env_var", "OMP_NUM_THREADS", "medium"),
        ("env_var", "HIP_VISIBLE_DEVICES", "medium"),
        ("env_var", "CUBLAS_WORKSPACE_CONFIG", "high"),
        ("env_var", "HF_HUB_OFFLINE", "low"),
        ("something_new", "x", "low"),
    ],
)
def test_facts_have_their_risk(category, name, level):
    assert risk_for(category, name).level == level


def test_table_rows_are_well_formed():
    patterns = [row[0] for row in RISK_TABLE]
    assert len(patterns) == len(set(patterns)), "duplicate pattern: the second one can never match"
    for pattern, level, reason, stages in RISK_TABLE:
        assert ":" in pattern or pattern == "*"
        assert level in LEVELS
        assert reason and "\n" not in reason
        assert set(stages) <= set(STAGES)
    assert RISK_TABLE[-1][0] == "*"


def test_canonical_name_follows_pep503():
    assert canonical_name("Foo_Bar.baz") == "foo-bar-baz"
    assert canonical_name("opencv-python") == "opencv-python"


def test_level_rank_orders_high_first():
    assert sorted(["low", "high", "medium"], key=level_rank) == ["high", "medium", "low"]
    assert sorted(["None", "low", "high"], key=level_rank) == ["high", "low", "None"]  # unknown last
