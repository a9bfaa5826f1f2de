"""Pins the public API: what `import parity` exports, and that each front matches its
implementation's signature (so the fronts cannot drift from the real functions)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import parity

FRONTS = {
    "snapshot": "parity.env.snapshot",
    "diff": "parity.env.diff",
    "doctor": "parity.env.doctor",
    "lock": "parity.env.lock",
    "record": "parity.records.recorder",
    "verify": "parity.comparison.verify",
    "compare": "parity.comparison.verify",
    "bench": "parity.benchmark.protocol",
    "export": "parity.exporters.api",
    "bisect": "parity.bisection.search",
}
#: keyword-only hooks for tests (fakes) that the fronts do not expose
HIDDEN = {"index_probe", "hash_source", "progress"}


def test_exported_members():
    assert sorted(parity.__all__) == sorted(
        ["ParityError", "Pipeline", "__version__", *FRONTS]
    )
    for name in parity.__all__:
        assert hasattr(parity, name), name


def test_fronts_match_their_implementations():
    for name, module in FRONTS.items():
        impl = getattr(importlib.import_module(module), name)
        want = [
            (p.name, p.kind, p.default)
            for p in inspect.signature(impl).parameters.values()
            if p.name not in HIDDEN
        ]
        got = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(parity, name)).parameters.values()]
        assert got == want, name


def test_import_parity_is_light():
    code = "import sys, parity; print(sorted(m for m in ('torch', 'numpy', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_front_calls_the_implementation(tmp_path):
    snap = parity.snapshot()
    assert snap["schema"].startswith("parity.snapshot/")
    assert parity.diff(snap, snap).identical


def test_fronts_stay_functions_after_every_subpackage_is_imported():
    # A subpackage named like a front would rebind `parity.<name>` to the module on import.
    code = (
        "import importlib, pkgutil, parity\n"
        "for m in pkgutil.walk_packages(parity.__path__, 'parity.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        f"print(sorted(n for n in {sorted(FRONTS)!r} if not callable(getattr(parity, n))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
