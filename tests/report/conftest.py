"""Make this folder's helpers (verify_samples, chromium_cdp) importable whatever pytest's
import mode (prepend adds the folder itself; importlib and packages do not)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
