"""Issue 14 #3: credentials are masked wherever the environment package records a value.

Unit level: the variable allow-list and its deny words, value masking whatever the name,
URL user-info split as pip splits it, token-like path segments, and a snapshot from an
older parity masked again when read. tests/test_secrets.py greps what every command writes.
"""

from __future__ import annotations

import json
import time

import pytest

from parity.env._collect import (
    collect_env_vars,
    collect_pip_sources,
    env_var_recorded,
    looks_like_secret,
    redact,
)
from parity.env.snapshots import check_snapshot, snapshot

TOKENS = {
    "hf": "hf_kXqPZrWbYtLmNoPqRsTuVwXyZaBcDeFgHi",
    "ghp": "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "openai": "sk-proj-Ab12Cd34Ef56Gh78Ij90",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "slack": "xoxb-123456789012-abcdefghijkl",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "random_base62": "tkn9Xq3LmZ7pR2vB8sW4yK6d",
    "random_hex": "5f4dcc3b5aa765d61d8327deb882cf99aa",
}
#: Values that must survive: real settings of the allowed variables.
KEPT = ["4", ":4096:8", "expandable_segments:True,max_split_size_mb:128", "granularity=fine,compact,1,0",
        "/opt/intel/oneapi/mkl/2024.1/lib:/usr/lib", "8.0;8.6+PTX", "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
        "https://mirror.example.invalid/hf", "ExpandableSegments2024Configuration", "0,1,2,3", "false"]


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_a_credential_shaped_value_is_masked_whatever_its_name(kind):
    token = TOKENS[kind]
    assert looks_like_secret(token)
    out = collect_env_vars({"OMP_SCHEDULE": token, "TORCH_LOGS": f"a,{token},b", "HF_ENDPOINT": f"https://h/{token}/x"})
    assert token not in json.dumps(out), out
    assert out["TORCH_LOGS"] == "a,***,b"


@pytest.mark.parametrize("value", KEPT)
def test_ordinary_settings_are_kept_as_they_are(value):
    assert not looks_like_secret(value)
    assert collect_env_vars({"PYTORCH_CUDA_ALLOC_CONF": value}) == {"PYTORCH_CUDA_ALLOC_CONF": value}


@pytest.mark.parametrize("name", ["TORCH_HUB_PASS", "HF_HUB_PAT", "PYTORCH_PASSPHRASE", "CUDA_ACCESS", "HF_TOKEN",
                                  "HUGGING_FACE_HUB_TOKEN", "HF_API_KEY", "TORCH_PASSWORD", "NVIDIA_API_KEY",
                                  "TRANSFORMERS_AUTH", "OPENBLAS_SECRET", "CUDA_CREDENTIALS", "HF_HUB_SAS",
                                  "OMP_SIG", "TORCH_COOKIE", "MKL_SESSION_ID", "AWS_SECRET_ACCESS_KEY", "HOME", "PATH"])
def test_names_that_may_hold_a_credential_or_are_not_on_the_allow_list_are_not_recorded(name):
    assert not env_var_recorded(name)
    assert collect_env_vars({name: "anything"}) == {}


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "MKL_CBWR", "OPENBLAS_CORETYPE", "CUDA_VISIBLE_DEVICES",
                                  "CUBLAS_WORKSPACE_CONFIG", "CUDNN_CONV_WSCAP_DBG",
                                  "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "PYTORCH_CUDA_ALLOC_CONF", "HF_HUB_OFFLINE",
                                  "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "KMP_AFFINITY", "GOMP_CPU_AFFINITY",
                                  "NVIDIA_TF32_OVERRIDE", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHASHSEED",
                                  "HIP_VISIBLE_DEVICES", "TORCHINDUCTOR_MAX_AUTOTUNE", "TORCH_COMPAT_MODE"])
def test_numerics_and_speed_settings_are_recorded(name):
    assert env_var_recorded(name)


@pytest.mark.parametrize(("url", "masked"), [
    ("https://user:p@ss@word@host.invalid/simple/", "https://***@host.invalid/simple/"),  # pip: the last @
    ("https://user:pa/ss@host.invalid/simple/", "https://***@host.invalid/simple/"),
    ("https://TOKEN_Zq8Rk2Lm9Tx4Vb7Nw3Yp@host.invalid/simple/", "https://***@host.invalid/simple/"),
    ("https://host.invalid/Zq8Rk2Lm9Tx4Vb7Nw3Yp/org/simple/", "https://host.invalid/***/org/simple/"),
    (f"https://host.invalid/{TOKENS['hf']}/simple/", "https://host.invalid/***/simple/"),
    ("https://host.invalid/simple/?token=abc&x=1", "https://host.invalid/simple/?token=***&x=1"),
    ("https://host.invalid/simple/?x=Zq8Rk2Lm9Tx4Vb7Nw3Yp", "https://host.invalid/simple/?x=***"),
    ("https://host.invalid:8443/org/simple/", "https://host.invalid:8443/org/simple/"),
    ("git+https://host.invalid/org/repo.git@0123456789abcdef0123456789abcdef01234567",
     "git+https://host.invalid/org/repo.git@0123456789abcdef0123456789abcdef01234567"),  # a commit, not a token
    ("https://host.invalid/w/0123456789abcdef0123456789abcdef-1.0-py3-none-any.whl",
     "https://host.invalid/w/0123456789abcdef0123456789abcdef-1.0-py3-none-any.whl"),  # a file name
    ("--extra-index-url https://u:p@h.invalid/s/ -f file:///wheels", "--extra-index-url https://***@h.invalid/s/ -f file:///wheels"),
])
def test_urls_are_masked_as_pip_reads_them(url, masked):
    assert redact(url) == masked


def test_pip_sources_mask_the_whole_password_and_path_tokens(tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://user:p@ss@word@host.invalid/simple/\n")
    got = collect_pip_sources({"PIP_CONFIG_FILE": str(conf),
                               "PIP_EXTRA_INDEX_URL": "https://host.invalid/Zq8Rk2Lm9Tx4Vb7Nw3Yp/org/simple/"},
                              str(tmp_path), str(tmp_path / "prefix"), str(tmp_path / "etc"))
    text = json.dumps(got)
    assert "p@ss" not in text and "word@" not in text and "Zq8Rk2Lm9Tx4Vb7Nw3Yp" not in text
    assert got["index_url"]["value"] == "https://***@host.invalid/simple/"


def test_masking_is_linear_on_hostile_values():
    started = time.perf_counter()
    for value in ("a" * 200_000, "a://" * 50_000, "https://" + "@" * 200_000, "?" + "a" * 200_000,
                  "eyJ" * 60_000, "hf_" * 60_000, "https://h/" + "a/" * 100_000 + "?" + "a=b&" * 50_000):
        redact(value)
    assert time.perf_counter() - started < 30  # quadratic would take hours; linear takes well under a second


def test_a_snapshot_written_before_this_masking_is_masked_when_read():
    snap = snapshot()
    snap["env_vars"] = {"TORCH_HUB_PASS": "hunter2", "OMP_SCHEDULE": TOKENS["ghp"], "OMP_NUM_THREADS": "4"}
    snap["package_sources"] = {"pip": {"index_url": {"value": "https://u:p@ss@word@host.invalid/s/", "source": "x"},
                                       "extra_index_urls": [], "find_links": [], "no_index": None, "trusted_hosts": [],
                                       "files": [], "errors": []}}
    name = next(iter(snap["packages"]))
    snap["packages"][name] = {**snap["packages"][name], "direct_url": {"url": "https://host.invalid/Zq8Rk2Lm9Tx4Vb7Nw3Yp/a.git"}}
    text = json.dumps(check_snapshot(snap, "old.json"))
    for secret in ("hunter2", TOKENS["ghp"], "p@ss", "Zq8Rk2Lm9Tx4Vb7Nw3Yp"):
        assert secret not in text
    assert snap["env_vars"]["TORCH_HUB_PASS"] == "hunter2"  # the caller's dict is left alone
