"""Issue 13: every loaded BLAS/OpenMP library has its own key, and the runtime snapshot of
one environment is the same in every fresh process.

numpy and scipy both bundle an OpenBLAS whose threadpoolctl prefix is
``libscipy_openblas``; keyed by prefix they collided and the one loaded last won, so
``parity diff`` of an unchanged environment showed ``version 0.3.30 -> 0.3.31``. Here the
collision is made real without scipy: two copies of numpy's own OpenBLAS are placed in
two package folders (``fakea.libs``, ``fakeb.libs``) and loaded beside numpy's, in an
order that changes from run to run, each set to another thread count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parity.env.differences import diff, rekey_threadpool
from parity.env.runtime import library_owner, threadpool_entries

SITE = "/venv/lib/python3.11/site-packages"


def _lib(path: str, prefix: str = "libscipy_openblas", **extra: Any) -> dict[str, Any]:
    return {"user_api": "blas", "internal_api": "openblas", "prefix": prefix, "filepath": path,
            "version": "0.3.31", "num_threads": 4, "threading_layer": "pthreads",
            "architecture": "Haswell", **extra}


def test_numpy_and_scipy_openblas_get_two_keys_named_by_their_package():
    libs = [_lib(f"{SITE}/scipy.libs/libscipy_openblas-c128ec02.so", version="0.3.30"),
            _lib(f"{SITE}/numpy.libs/libscipy_openblas64_-32a4b2a6.so"),
            {"user_api": "openmp", "internal_api": "openmp", "prefix": "libgomp",
             "filepath": f"{SITE}/torch/lib/libgomp.so.1", "version": None, "num_threads": 4}]
    got = threadpool_entries(libs, [SITE, "/venv/lib/python3.11"], ["/venv"])
    assert list(got) == ["blas:openblas:numpy/libscipy_openblas", "blas:openblas:scipy/libscipy_openblas",
                         "openmp:openmp:torch/libgomp"]  # sorted, not in load order
    assert got["blas:openblas:scipy/libscipy_openblas"]["version"] == "0.3.30"
    assert threadpool_entries(list(reversed(libs)), [SITE], ["/venv"]) == got


def test_owner_of_a_library_outside_any_package():
    assert library_owner("/usr/lib/x86_64-linux-gnu/libopenblas.so.0", [SITE], ["/venv"]) == "system"
    assert library_owner("/opt/conda/lib/libmkl_rt.so.2", [SITE], ["/opt/conda"]) == "env"
    assert library_owner(f"{SITE}/numpy/.dylibs/libopenblas.dylib", [SITE], []) == "numpy"
    assert library_owner(None, [SITE], []) == "system"


def test_two_libraries_with_one_owner_and_prefix_are_numbered_by_path_not_load_order():
    one, two = _lib(f"{SITE}/pkg/a/libopenblas.so", "libopenblas"), _lib(f"{SITE}/pkg/b/libopenblas.so", "libopenblas")
    first = threadpool_entries([two, one], [SITE], [])
    assert list(first) == ["blas:openblas:pkg/libopenblas", "blas:openblas:pkg/libopenblas#2"]
    assert first["blas:openblas:pkg/libopenblas"]["filepath"].endswith("a/libopenblas.so")
    assert threadpool_entries([one, two], [SITE], []) == first


def test_a_snapshot_with_the_old_keys_compares_library_by_library():
    old = {"blas:openblas:libscipy_openblas": {k: v for k, v in _lib(f"{SITE}/numpy.libs/x.so").items() if k != "prefix"},
           "error": "kept as is"}
    snap = {"meta": {"sys_path": [SITE]}, "python": {"prefix": "/venv"}, "runtime": {"threadpool": old}}
    assert set(rekey_threadpool(snap)["runtime"]["threadpool"]) == {"blas:openblas:numpy/libscipy_openblas", "error"}
    assert snap["runtime"]["threadpool"] is old  # the caller's snapshot is not changed


# --- the real thing, in fresh processes ----------------------------------------------------

#: Loads numpy (its OpenBLAS first: the copies share its SONAME, so loaded first they would
#: stand in for it), then the two copies in the order argv[1] says, sets each copy's
#: threads, and prints the snapshot (runtime included) with an empty "meta".
_PROBE = r"""
import ctypes, json, os, sys
if sys.argv[3] == "no-torch":
    sys.modules["torch"] = None  # the fast test: everything but torch's import
import numpy
site = sys.argv[2]
order = ["fakea", "fakeb"] if sys.argv[1] == "ab" else ["fakeb", "fakea"]
threads = {"fakea": 1, "fakeb": 3}
for name in order:
    folder = os.path.join(site, name + ".libs")
    lib = ctypes.CDLL(os.path.join(folder, os.listdir(folder)[0]))
    getattr(lib, sys.argv[4])(threads[name])
from parity.env.snapshots import snapshot
snap = snapshot(runtime=True)
snap["meta"] = {}  # pid, time, timings: volatile by design
print(json.dumps(snap, sort_keys=True))
"""


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import numpy

    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    found = sorted(libs.glob("lib*openblas*.so*")) if libs.is_dir() else []
    if not found:
        pytest.fail(f"this test needs numpy's bundled OpenBLAS in {libs} (a manylinux numpy wheel)")
    site = tmp_path_factory.mktemp("site")
    for name, suffix in (("fakea", "aaaa1111"), ("fakeb", "bbbb2222")):
        (site / f"{name}.libs").mkdir()
        shutil.copy(found[0], site / f"{name}.libs" / f"libscipy_openblas64_-{suffix}.so")
    setter = "scipy_openblas_set_num_threads64_" if "64_" in found[0].name else "openblas_set_num_threads"
    return site, setter


def _snapshots(site: Path, setter: str, runs: int, torch: bool) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "OPENBLAS_"))}
    env["PYTHONPATH"] = str(site)
    out = []
    for run in range(runs):
        order = "ab" if run % 2 == 0 else "ba"
        proc = subprocess.run([sys.executable, "-c", _PROBE, order, str(site), "torch" if torch else "no-torch", setter],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def _check_identical(snaps: list[dict[str, Any]]) -> None:
    first = snaps[0]
    pool = first["runtime"]["threadpool"]
    assert {"blas:openblas:fakea/libscipy_openblas", "blas:openblas:fakeb/libscipy_openblas",
            "blas:openblas:numpy/libscipy_openblas"} <= set(pool), sorted(pool)
    assert pool["blas:openblas:fakea/libscipy_openblas"]["num_threads"] == 1
    assert pool["blas:openblas:fakeb/libscipy_openblas"]["num_threads"] == 3
    for i, snap in enumerate(snaps[1:], 2):
        result = diff(first, snap)
        assert result.identical, f"run {i}: {[(d.name, d.a, d.b) for d in result.items]}"
        assert snap == first, f"run {i}: the snapshot (meta aside) changed"


def test_runtime_snapshot_is_the_same_in_6_fresh_processes_whatever_the_load_order(fake_site):
    _check_identical(_snapshots(*fake_site, runs=6, torch=False))


@pytest.mark.slow
def test_runtime_snapshot_with_torch_is_the_same_in_20_fresh_processes(fake_site):
    _check_identical(_snapshots(*fake_site, runs=20, torch=True))
