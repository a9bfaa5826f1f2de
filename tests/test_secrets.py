"""Issue 14 #3 acceptance: no planted secret reaches any file or output parity writes.

Secrets are planted the ways they reach a real machine: variables named like credentials
(whatever their prefix), credential-shaped values in variables parity does record, a
token in an index URL's path, passwords holding an unencoded ``@`` in
``PIP_EXTRA_INDEX_URL``, ``UV_INDEX`` and a pip.conf named by ``PIP_CONFIG_FILE``, and a
requirements file with the same URLs. Every command runs in a fresh process with that
environment; then every file under the working folder and parity's cache, and every
stdout and stderr, is searched for every secret.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PARITY = Path(sys.executable).parent / "parity"

PATH_TOKEN = "tkn9Xq3LmZ7pR2vB8sW4yK6d"
CONF_TOKEN = "cfgTok3nZ8Qw2Er5Ty7Ui1Op"
#: name -> value: each value (or the listed piece of it) must appear nowhere.
SECRET_VARIABLES = {
    "TORCH_HUB_PASS": "hub-pass-Vq7Kx",
    "HF_HUB_PAT": "pat-value-Jm3Lz",
    "PYTORCH_PASSPHRASE": "passphrase-value-Rt5Wy",
    "CUDA_ACCESS": "cuda-access-Hn2Qp",
    "HF_TOKEN": "hf_kXqPZrWbYtLmNoPqRsTuVwXyZaBcDeFgHi",
    "TORCH_API_KEY": "key-value-Pp4Ss",
    "NVIDIA_SECRET": "nv-secret-Dd8Ff",
    # allowed names (ORT_/OPENCV_ are recorded; nothing here reads these) with credential-shaped values
    "ORT_PARITY_GH": "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "ORT_PARITY_GH_FINE": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "ORT_PARITY_OPENAI": "sk-proj-Ab12Cd34Ef56Gh78Ij90",
    "OPENCV_PARITY_AWS": "AKIAIOSFODNN7EXAMPLE",
    "OPENCV_PARITY_SLACK": "xoxb-123456789012-abcdefghijkl",
    "OPENCV_PARITY_JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "OPENCV_PARITY_RANDOM": "Rnd7Hq2Wm9Zx4Kc6Vb1Np3Ls",
    "HF_ENDPOINT": "https://hfuser:hf-pw-K8z@mirror.host.invalid/",
}
PIP_EXTRA = f"https://host.invalid/{PATH_TOKEN}/org/simple/ https://user:p@ss@word@host.invalid/simple/"
UV_INDEX = "corp=https://uvuser:uv-pw-Xy9@host.invalid/simple/"
PIP_CONF = (f"[global]\nindex-url = https://confuser:conf@pass@word@host.invalid/simple/\n"
            f"extra-index-url = https://host.invalid/{CONF_TOKEN}/simple/\n")
REQUIREMENTS = (f"--extra-index-url https://host.invalid/{PATH_TOKEN}/org/simple/\n"
                "-i https://user:p@ss@word@host.invalid/simple/\nnumpy\n")
#: What must never be seen: every value above, and the pieces of the passwords.
SECRETS = sorted({
    *(v for k, v in SECRET_VARIABLES.items() if k != "HF_ENDPOINT"), "hf-pw-K8z", "hfuser",
    PATH_TOKEN, CONF_TOKEN, "p@ss", "ss@word", "uv-pw-Xy9", "uvuser", "conf@pass", "pass@word", "confuser",
})


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(SECRET_VARIABLES)
    env.update(PIP_EXTRA_INDEX_URL=PIP_EXTRA, UV_INDEX=UV_INDEX, PIP_CONFIG_FILE=str(work / "pip.conf"),
               XDG_CACHE_HOME=str(work / "cache"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


COMMANDS = [
    ["snapshot", "-o", "snap.json", "--runtime"],
    ["snapshot", "--json"],
    ["lock", "snap.json", "-o", "lock.txt"],
    ["lock", "snap.json"],
    ["record", "models.py:build_tiny_text", "-o", "rec", "--capture", "stats", "--bench"],
    ["bench", "models.py:build_tiny_text", "-o", "bench.json", "--min-time", "0.2", "--min-iters", "3"],
    ["verify", "rec", "models.py:build_tiny_text", "--html", "report.html", "--json"],
    ["verify", "rec", "models.py:build_tiny_text"],
    ["diff", "snap.json", "rec"],
    ["diff", "snap.json", "bench.json", "--json"],
    ["doctor", "requirements.txt", "--snapshot", "snap.json"],
    ["doctor", "requirements.txt", "--json"],
]


def test_no_planted_secret_reaches_any_file_or_output(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "tests" / "models.py", work / "models.py")
    (work / "pip.conf").write_text(PIP_CONF)
    (work / "requirements.txt").write_text(REQUIREMENTS)
    planted = {work / "pip.conf", work / "requirements.txt"}
    env = _env(work)
    outputs = {}
    for argv in COMMANDS:
        proc = subprocess.run([str(PARITY), *argv], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode in (0, 1), f"parity {' '.join(argv)}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        outputs[" ".join(argv)] = proc.stdout + proc.stderr
    assert (work / "rec" / "env.json").is_file() and (work / "report.html").is_file()
    # every secret really was there to leak: in the environment or the planted files
    seen = "\n".join([*env.values(), *(p.read_text() for p in planted)])
    assert all(s in seen for s in SECRETS)
    written = [p for p in (work, tmp_path / "work" / "cache") for p in p.rglob("*") if p.is_file() and p not in planted]
    assert len(written) >= 15, written
    leaks = [f"{path.relative_to(tmp_path)}: {s}" for path in written for s in SECRETS
             if s.encode() in path.read_bytes()]
    leaks += [f"output of parity {cmd}: {s}" for cmd, text in outputs.items() for s in SECRETS if s in text]
    assert not leaks, "\n".join(leaks)
    # and the masking left its mark where a credential was
    snap = (work / "snap.json").read_text()
    assert "https://host.invalid/***/org/simple/" in snap and "https://***@host.invalid/simple/" in snap
    lock = (work / "lock.txt").read_text()
    assert "PIP_EXTRA_INDEX_URL" in lock and "PIP_INDEX_URL" in lock
    assert not [ln for ln in lock.splitlines() if "***" in ln and not ln.startswith("#")]
