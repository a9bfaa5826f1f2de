"""Pins the public API: what `import parity` exports, that each front matches its
implementation's signature (so the fronts cannot drift from the real functions), that no
module is hidden by a function of the same name, and that the types tell a user's type
checker something (mypy on a small user script)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest

import parity

FRONTS = {
    "snapshot": "parity.env.snapshots",
    "diff": "parity.env.differences",
    "doctor": "parity.env.doctor",
    "lock": "parity.env.lock",
    "record": "parity.records.recorder",
    "verify": "parity.comparison.verification",
    "compare": "parity.comparison.verification",
    "bench": "parity.benchmark.protocol",
    "export": "parity.exporters.api",
    "bisect": "parity.bisection.search",
    "watch": "parity.watch.watcher",
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


def test_no_module_is_hidden_by_a_function_of_its_name():
    """`parity.env.snapshot` was both a module and a function: after `import parity.env` the
    name meant the function, so `parity.env.snapshot.load_snapshot` failed."""
    code = (
        "import importlib, pkgutil, types, parity\n"
        "clashes = []\n"
        "for pkg in [parity] + [importlib.import_module(m.name) for m in pkgutil.walk_packages(parity.__path__, 'parity.')\n"
        "                       if m.ispkg]:\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name == '__main__':\n"
        "            continue\n"
        "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "        if not isinstance(getattr(pkg, m.name), types.ModuleType):\n"
        "            clashes.append(f'{pkg.__name__}.{m.name}')\n"
        "print(clashes)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_fronts_have_real_types():
    for name in FRONTS:
        sig = inspect.signature(getattr(parity, name))
        assert sig.return_annotation not in (inspect.Signature.empty, "Any"), name
        untyped = [p.name for p in sig.parameters.values() if p.annotation in (inspect.Parameter.empty, "Any")]
        assert not untyped, (name, untyped)


#: A user's script that uses every front as documented: clean under `mypy --strict`.
RIGHT = """
    from pathlib import Path

    import parity


    def check(record_dir: Path) -> int:
        result = parity.verify(record_dir, "serve.py:build", atol=1e-5, max_slowdown=0.1)
        verdict: str = result.verdict
        snap = parity.snapshot(runtime=True)
        env = parity.diff(snap, "current", requirements="requirements.txt")
        rec = parity.record("serve.py:build", ["a text"], out=record_dir, capture="full", batch_size=8)
        timing = parity.bench(parity.Pipeline(model=len), inputs=Path("inputs.jsonl"), threads=2)
        art = parity.export("serve.py:build", "onnx", "model.onnx", atol=1e-4)
        found = parity.bisect("good.json", "bad.json", command=["pytest", "-x"], runs=3)
        report = parity.doctor("requirements.txt", snapshot=snap)
        locked = parity.lock(snap, hashes=True, out=Path("req.lock"))
        other = parity.compare(record_dir, Path("b"))
        guard = parity.watch(parity.Pipeline(model=len), record_dir, sample_every=100, canary_every=600)
        watched: str | None = guard.status().verdict
        guard.close()
        print(verdict, env.identical, rec.path, timing.to_json(), art.ok, found.status, report.ok, locked.text,
              other.reason, watched)
        return result.exit_code
"""

#: The same API used wrongly: line number -> what mypy must say about it.
WRONG = {
    4: ("import parity", None),
    5: ("parity.verify('golden').no_such_attr", '"VerifyResult" has no attribute "no_such_attr"'),
    6: ("parity.verify(42)", 'Argument 1 to "verify" has incompatible type "int"'),
    7: ("parity.record('serve.py:build', batch_size='8')", 'Argument "batch_size" to "record" has incompatible type "str"'),
    8: ("parity.diff('a.json', 'b.json').identical + 'x'", "Unsupported operand types"),
    9: ("parity.export('serve.py:build', 'onnx', out=3.5)", 'Argument "out" to "export" has incompatible type "float"'),
    10: ("parity.bench(parity.Pipeline(model=len), min_iters='20').stages", 'incompatible type "str"'),
}


@pytest.fixture(scope="module")
def mypy_on_user_scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy --strict, as a user would run it, on RIGHT and WRONG in a folder with no config."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "right.py").write_text(textwrap.dedent(RIGHT).lstrip())
    (folder / "wrong.py").write_text('"""A user script."""\n\n\n' + "\n".join(line for line, _ in WRONG.values()) + "\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--no-error-summary",
                           "--hide-error-context", "--cache-dir", str(folder / ".mypy_cache"), "right.py", "wrong.py"],
                          cwd=folder, capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    found: dict[str, list[str]] = {"right.py": [], "wrong.py": []}
    for line in proc.stdout.splitlines():
        found.setdefault(line.split(":", 1)[0], []).append(line)
    return found


def test_right_usage_is_clean_under_mypy_strict(mypy_on_user_scripts: dict[str, list[str]]) -> None:
    assert mypy_on_user_scripts["right.py"] == []


def test_wrong_usage_is_reported_by_mypy(mypy_on_user_scripts: dict[str, list[str]]) -> None:
    errors = mypy_on_user_scripts["wrong.py"]
    for number, (line, needle) in WRONG.items():
        said = [e for e in errors if e.startswith(f"wrong.py:{number}:")]
        if needle is None:
            assert not said, said
        else:
            assert any(needle in e for e in said), (line, errors)
