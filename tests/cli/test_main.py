from __future__ import annotations

import subprocess
import sys


def test_help_lists_every_command(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    for name in ("snapshot", "diff", "doctor", "lock", "record", "verify", "compare", "bench", "export", "bisect", "demo"):
        assert name in out


def test_unknown_command_is_usage_error(run_cli):
    code, _, err = run_cli("frobnicate")
    assert code == 2
    assert "frobnicate" in err


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0
    assert "parity" in out


def test_help_imports_no_torch():
    code = "import sys; from parity.cli.main import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
