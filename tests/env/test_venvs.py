"""Acceptance: two REAL virtual environments that differ in known ways, snapshotted from
outside with ``parity snapshot --python`` and compared with ``parity diff``.

The venvs are built with ``python -m venv --without-pip`` and filled by uv from a folder
of tiny wheels written here (no index, no network, no torch).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent

#: A and B share "common"; B has another tokenizers, a torchvision of another variant,
#: an extra "leftpad" and lacks "scipy".
VENV_A = {"common": "1.0", "tokenizers": "0.19.1", "torchvision": "0.18.0+cu118", "scipy": "1.13.0"}
VENV_B = {"common": "1.0", "tokenizers": "0.20.0", "torchvision": "0.18.0+cpu", "leftpad": "1.0"}


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel (METADATA, WHEEL, RECORD) that uv installs offline."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: parity-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{p},sha256={_b64sha(t.encode())},{len(t.encode())}" for p, t in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            zf.writestr(arcname, text)
    return path


def _b64sha(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_venv(root: Path, wheels: Path, packages: dict[str, str]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    env = dict(os.environ, UV_CACHE_DIR=str(root.parent / "uv-cache"), UV_NO_CONFIG="1")
    for var in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "PIP_INDEX_URL", "PIP_FIND_LINKS"):
        env.pop(var, None)
    specs = [f"{name}=={version}" for name, version in packages.items()]
    subprocess.run(
        [str(BIN / "uv"), "pip", "install", "--quiet", "--python", str(root / "bin" / "python"),
         "--offline", "--no-index", "--find-links", str(wheels), *specs],
        check=True, env=env,
    )
    return root


def parity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "parity"), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("venvs")
    wheels = root / "wheels"
    wheels.mkdir()
    for name, version in {*VENV_A.items(), *VENV_B.items()}:
        build_wheel(wheels, name, version)
    return make_venv(root / "a", wheels, VENV_A), make_venv(root / "b", wheels, VENV_B)


@pytest.fixture(scope="module")
def snapshots(venvs: tuple[Path, Path]) -> tuple[Path, Path]:
    out = []
    for venv in venvs:
        path = venv.parent / f"{venv.name}.json"
        proc = parity("snapshot", "--python", venv / "bin" / "python", "-o", path)
        assert proc.returncode == 0, proc.stderr
        out.append(path)
    return out[0], out[1]


def test_snapshot_from_outside_sees_the_venv_not_parity(snapshots, venvs):
    snap = json.loads(snapshots[0].read_text())
    assert set(snap["packages"]) == set(VENV_A)  # no parity, no pip: nothing was installed there
    assert snap["python"]["prefix"] == str(venvs[0])
    assert snap["packages"]["torchvision"]["local"] == "cu118"
    assert snap["packages"]["torchvision"]["variant"]["kind"] == "cuda"
    assert snap["packages"]["tokenizers"]["installer"] == "uv"
    assert snap["torch"] is None


def test_diff_reports_exactly_the_known_differences_in_risk_order(snapshots):
    proc = parity("diff", *snapshots, "--json")
    assert proc.returncode == 1, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert [(d["name"], d["change"], d["risk"]) for d in items] == [
        ("tokenizers", "changed", "high"),
        ("torchvision", "variant", "high"),
        ("scipy", "removed", "medium"),
        ("leftpad", "added", "low"),
    ]
    by_name = {d["name"]: d for d in items}
    assert (by_name["tokenizers"]["a"], by_name["tokenizers"]["b"]) == ("0.19.1", "0.20.0")
    assert (by_name["torchvision"]["a"], by_name["torchvision"]["b"]) == ("0.18.0+cu118", "0.18.0+cpu")
    assert "preprocess" in by_name["tokenizers"]["stages"]


def test_diff_table_for_people(snapshots):
    proc = parity("diff", *snapshots)
    assert proc.returncode == 1
    for text in ("tokenizers", "torchvision", "scipy", "leftpad", "4 differences"):
        assert text in proc.stdout


def test_two_snapshots_of_one_venv_diff_to_nothing(snapshots, venvs, tmp_path):
    again = tmp_path / "again.json"
    assert parity("snapshot", "--python", venvs[0], "-o", again).returncode == 0
    proc = parity("diff", snapshots[0], again)
    assert proc.returncode == 0, proc.stdout
    assert "identical" in proc.stdout


def test_three_way_with_requirements(snapshots, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("tokenizers>=0.19\ntorchvision==0.18.0+cu118\nscipy==1.13.0\n")
    proc = parity("diff", *snapshots, "--requirements", req, "--json")
    assert proc.returncode == 1, proc.stderr
    by_name = {d["name"]: d for d in json.loads(proc.stdout)["items"]}
    assert by_name["tokenizers"]["declared_allows"] is True        # loose range allowed the drift
    assert by_name["torchvision"]["declared_allows"] is False      # the pin was not honoured in B
    assert by_name["leftpad"]["declared_status"] == "absent"       # unpinned extra


def test_venv_folders_can_be_diffed_directly(venvs):
    proc = parity("diff", *venvs, "--json")
    assert proc.returncode == 1, proc.stderr
    names = [d["name"] for d in json.loads(proc.stdout)["items"]]
    assert names == ["tokenizers", "torchvision", "scipy", "leftpad"]
