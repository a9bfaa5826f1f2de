"""``python -m parity``. A parity that cannot even import says so in one line (never exit 1,
which scripts and ``parity bisect`` read as "divergence found")."""

import sys

try:
    from parity.cli.main import run
except ModuleNotFoundError as exc:
    missing = exc.name or str(exc)
    if missing.partition(".")[0] == "parity":
        sys.stderr.write(f"parity: internal error: part of parity is missing ({exc}); reinstall parity\n")
        sys.exit(3)
    sys.stderr.write(f"parity: error: parity cannot start here: {missing} is not installed "
                     f"(fix: install parity's dependencies into {sys.prefix})\n")
    sys.exit(2)

run()
