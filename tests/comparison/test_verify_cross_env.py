"""Record in one interpreter, verify in a second virtual environment that differs by a
package version: the difference must appear in the report's environment section."""

from __future__ import annotations

import json
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]
PKG = "parity-fixture-pkg"


def make_env(root: Path, version: str) -> Path:
    """A venv on this interpreter that sees this environment's packages, plus PKG==version.

    ``--system-site-packages`` would expose the base interpreter's packages, not this
    venv's, so a .pth file adds this environment's site-packages instead. PKG is a
    minimal installed distribution (dist-info only): enough for any metadata reader.
    """
    venv.EnvBuilder(with_pip=False).create(root)
    site = Path(subprocess.check_output(
        [str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    here = sysconfig.get_paths()["purelib"]
    (site / "zz_parent_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    dist = site / f"parity_fixture_pkg-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {version}\n")
    (dist / "INSTALLER").write_text("pip\n")
    (dist / "RECORD").write_text("")
    return root / "bin" / "python"


def run_parity(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "parity", *args], capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})


def test_env_difference_between_interpreters_is_reported(tmp_path: Path) -> None:
    python_a, python_b = make_env(tmp_path / "env_a", "1.0"), make_env(tmp_path / "env_b", "2.0")
    target = f"{TESTS / 'models.py'}:build_tiny_text"
    golden = tmp_path / "golden"
    rec = run_parity(python_a, "record", target, "-o", str(golden), "--capture", "stats")
    assert rec.returncode == 0, rec.stderr
    ver = run_parity(python_b, "verify", str(golden), target, "--json")
    assert ver.returncode == 0, ver.stderr
    doc = json.loads(ver.stdout)
    assert doc["verdict"].startswith("PASS"), doc["reason"]
    item = next(i for i in doc["env_diff"]["items"] if i["name"] == PKG)
    assert (item["a"], item["b"]) == ("1.0", "2.0")
    assert doc["a"]["target"] == target and all(x["status"] == "match" for x in doc["layers"])
