"""The public surface of parity.env is pinned (httpx tests/test_exported_members.py habit)."""

from __future__ import annotations

import subprocess
import sys

import parity.env


def test_exported_members():
    assert sorted(parity.env.__all__) == [
        "Difference", "EnvDiff", "diff", "load_snapshot", "snapshot", "snapshot_from_python",
    ]
    for name in parity.env.__all__:
        assert callable(getattr(parity.env, name))


def test_importing_env_and_its_commands_does_not_import_torch_or_rich():
    code = ("import sys, parity.env, parity.cli.snapshot, parity.cli.diff; "
            "print(sorted(m for m in ('torch', 'rich', 'numpy', 'threadpoolctl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
