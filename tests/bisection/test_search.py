"""bisect() end to end on tiny wheels: real uv installs, a real good venv, a script oracle."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from tinywheels import build_wheel, make_good_venv, write_snapshot

from parity.bisection import IndexOptions, bisect
from parity.bisection.ddmin import Verdict


def _index(wheels: Path) -> IndexOptions:
    return IndexOptions(find_links=(str(wheels),), no_index=True)


@pytest.mark.parametrize("culprit", ["pkg-00", "pkg-11", "pkg-15"])
def test_sixteen_changes_one_culprit_within_six_trials(culprit, sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({culprit})
    result = bisect(good, bad, command=["python", str(oracle_script), culprit], index=_index(wheels),
                    cache_dir=tmp_path / "cache")
    assert result.status == "found", result.reason
    assert [(c.name, c.good, c.bad) for c in result.culprits] == [(culprit, "1.0", "2.0")]
    assert len(result.trials) <= math.ceil(math.log2(16)) + 2
    assert {t.mode for t in result.trials} <= {"overlay", "base"}
    decisive = result.trials[result.decisive_trial - 1]
    assert decisive.bad_side == [culprit] and decisive.verdict is Verdict.BAD
    assert "PYTHONPATH=" in result.reproduce and str(oracle_script) in result.reproduce
    assert result.exit_code == 1


def test_variant_and_added_changes(tmp_path, wheels, oracle_script) -> None:
    build_wheel(wheels, "vt", "1.0+cu118")
    build_wheel(wheels, "vt", "1.0+cpu", "BROKEN = True\n")
    build_wheel(wheels, "extra", "0.1")
    python = make_good_venv(tmp_path, wheels, {"vt": "1.0+cu118"})
    good = write_snapshot(tmp_path / "good.json", {"vt": "1.0+cu118"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"vt": "1.0+cpu", "extra": "0.1"}, python=str(python))
    result = bisect(good, bad, command=["python", str(oracle_script), "vt"], index=_index(wheels),
                    cache_dir=tmp_path / "c")
    assert [(c.name, c.kind) for c in result.changes] == [("extra", "added"), ("vt", "variant")]
    assert [(c.name, c.good, c.bad) for c in result.culprits] == [("vt", "1.0+cu118", "1.0+cpu")]


def test_overlay_holds_only_the_trial_packages(sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({"pkg-03"})
    result = bisect(good, bad, command=["python", str(oracle_script), "pkg-03"], index=_index(wheels),
                    cache_dir=tmp_path / "cache")
    overlays = [p for p in (tmp_path / "cache").iterdir() if p.name.startswith("overlay-")]
    assert overlays
    decisive = result.trials[result.decisive_trial - 1]
    installed = sorted(d.name for d in Path(decisive.reproduce.split("PYTHONPATH=")[1].split()[0].strip("'")).iterdir()
                       if d.name.endswith(".dist-info"))
    assert installed == ["pkg_03-2.0.dist-info"]


def test_culprit_pair_that_breaks_only_together(sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({"pkg-02", "pkg-13"})
    result = bisect(good, bad, command=["python", str(oracle_script), "pkg-02+pkg-13"], index=_index(wheels),
                    cache_dir=tmp_path / "cache")
    assert result.status == "found", result.reason
    assert sorted(c.name for c in result.culprits) == ["pkg-02", "pkg-13"]
    assert "only together" in result.reason


def test_trial_cache_is_reused_by_a_second_bisect(sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({"pkg-07"})
    args = {"command": ["python", str(oracle_script), "pkg-07"], "index": _index(wheels), "cache_dir": tmp_path / "c"}
    first = bisect(good, bad, **args)
    second = bisect(good, bad, **args)
    assert [t.bad_side for t in first.trials] == [t.bad_side for t in second.trials]
    assert all(t.cached for t in second.trials if t.mode == "overlay")
    assert not any(t.cached for t in first.trials if t.mode == "overlay")


def test_crashing_oracle_is_could_not_judge(sixteen, wheels, tmp_path) -> None:
    good, bad = sixteen({"pkg-05"})
    crash = tmp_path / "crash.py"
    crash.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    result = bisect(good, bad, command=["python", str(crash)], index=_index(wheels), cache_dir=tmp_path / "c")
    assert result.status == "undetermined"
    assert result.culprits == []
    assert result.reason.startswith("could not judge") and "nothing is blamed" in result.reason
    assert result.trials[0].runs[0].exit_code < 0 and result.exit_code == 2
    assert "killed by signal 11" in result.reason


def test_runs_majority_over_a_flaky_oracle(sixteen, wheels, tmp_path) -> None:
    good, bad = sixteen({"pkg-04"})
    # Bad when pkg-04 is broken, except on every third call (a noisy perf oracle).
    counter = tmp_path / "count"
    flaky = tmp_path / "flaky.py"
    flaky.write_text(
        "import pathlib, sys, pkg_04\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n))\n"
        "bad = getattr(pkg_04, 'BROKEN', False)\n"
        "sys.exit(int(not bad) if n % 3 == 0 else int(bad))\n"
    )
    result = bisect(good, bad, command=["python", str(flaky)], runs=3, index=_index(wheels), cache_dir=tmp_path / "c")
    assert result.status == "found" and [c.name for c in result.culprits] == ["pkg-04"]
    assert all(len(t.runs) in (2, 3) for t in result.trials), "stops once two of three agree"
    assert any(len(t.runs) == 3 for t in result.trials), "a disagreement asks for the third run"


def test_removed_package_uses_a_full_venv(tmp_path, wheels, oracle_script) -> None:
    # keeper 2.0 is fine; gone is removed on the bad side, and removing it is what breaks.
    build_wheel(wheels, "keeper", "1.0")
    build_wheel(wheels, "keeper", "2.0")
    build_wheel(wheels, "gone", "1.0")
    python = make_good_venv(tmp_path, wheels, {"keeper": "1.0", "gone": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"keeper": "1.0", "gone": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"keeper": "2.0"}, python=str(python))
    needs_gone = tmp_path / "needs_gone.py"
    needs_gone.write_text("import sys\ntry:\n    import gone\nexcept ImportError:\n    sys.exit(1)\n")
    result = bisect(good, bad, command=["python", str(needs_gone)], index=_index(wheels), cache_dir=tmp_path / "c")
    assert result.status == "found", result.reason
    assert [(c.name, c.kind) for c in result.culprits] == [("gone", "removed")]
    venv_trials = [t for t in result.trials if t.mode == "venv"]
    assert venv_trials and all("gone" in (t.why_venv or "") for t in venv_trials)
    assert "VIRTUAL_ENV=" in result.reproduce


def test_uninstallable_bad_side_is_skip_not_blamed(tmp_path, wheels) -> None:
    build_wheel(wheels, "odd", "1.0")
    build_wheel(wheels, "odd", "2.0", tag="cp27-cp27mu-manylinux1_x86_64")
    python = make_good_venv(tmp_path, wheels, {"odd": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"odd": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"odd": "2.0"}, python=str(python))
    result = bisect(good, bad, command=[sys.executable, "-c", "pass"], index=_index(wheels), cache_dir=tmp_path / "c")
    assert result.status == "undetermined" and result.culprits == []
    assert result.trials[0].verdict is Verdict.SKIP and "could not build" in result.trials[0].note
    assert not list((tmp_path / "c").glob("overlay-*")), "a failed build leaves nothing in the cache"


def _releases(wheels: Path, versions: list[str], broken_from: str) -> None:
    for v in versions:
        build_wheel(wheels, "tok", v, "BROKEN = True\n" if v >= broken_from and "rc" not in v else "")


def test_narrow_finds_first_bad_release(tmp_path, wheels, oracle_script) -> None:
    _releases(wheels, ["1.0", "1.1", "1.2", "1.3rc1", "1.3", "1.4", "1.5"], broken_from="1.3")
    build_wheel(wheels, "other", "1.0")
    build_wheel(wheels, "other", "3.0")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0", "other": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0", "other": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "1.5", "other": "3.0"}, python=str(python))
    result = bisect(good, bad, command=["python", str(oracle_script), "tok"], narrow=True, index=_index(wheels),
                    cache_dir=tmp_path / "c")
    assert [c.name for c in result.culprits] == ["tok"]
    (narrowed,) = result.narrowed
    assert (narrowed["status"], narrowed["first_bad"], narrowed["last_good"]) == ("exact", "1.3", "1.2")
    assert narrowed["releases"] == ["1.1", "1.2", "1.3", "1.4"]
    assert "1.3rc1" not in narrowed["tried"]
    assert all(t.bad_side == ["tok==" + v] for t in result.trials if t.stage == "narrow" for v in [t.packages["tok"]])


def test_narrow_skips_an_uninstallable_release(tmp_path, wheels, oracle_script) -> None:
    _releases(wheels, ["1.0", "1.1", "1.3", "1.4", "1.5"], broken_from="1.3")
    build_wheel(wheels, "tok", "1.2", tag="cp27-cp27mu-manylinux1_x86_64")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "1.5"}, python=str(python))
    result = bisect(good, bad, command=["python", str(oracle_script), "tok"], narrow=True, index=_index(wheels),
                    cache_dir=tmp_path / "c")
    (narrowed,) = result.narrowed
    assert narrowed["tried"]["1.2"] == "skip"
    assert (narrowed["first_bad"], narrowed["last_good"], narrowed["skipped"]) == ("1.3", "1.1", ["1.2"])
    assert narrowed["status"] == "range"


@pytest.mark.slow  # pip takes ~2 s per install where uv takes ~50 ms
def test_pip_installer_fallback(sixteen, wheels, oracle_script, tmp_path) -> None:
    good, bad = sixteen({"pkg-09"})
    result = bisect(good, bad, command=["python", str(oracle_script), "pkg-09"], index=_index(wheels),
                    cache_dir=tmp_path / "c", installer="pip")
    assert result.installer == "pip"
    assert [c.name for c in result.culprits] == ["pkg-09"]


@pytest.mark.parametrize("runs", [0, -1])
def test_runs_must_be_positive(runs: int, tmp_path) -> None:
    from parity.errors import BisectError

    with pytest.raises(BisectError, match="--runs"):
        bisect(tmp_path / "a.json", tmp_path / "b.json", command=["true"], runs=runs)


NATIVE_2 = """\
import os, sys
# Stands in for an extension module built against other libraries than the ones it
# is imported with: it fails the way such modules fail when it is imported from
# outside its own environment (an overlay), and works inside a full venv.
if not os.path.realpath(__file__).startswith(os.path.realpath(sys.prefix)):
    raise ImportError("native/_ext.so: undefined symbol: _ZN6native4initEv")
BROKEN = True
"""


def test_binary_incompatibility_in_overlay_falls_back_to_a_venv(tmp_path, wheels, oracle_script) -> None:
    build_wheel(wheels, "native", "1.0")
    build_wheel(wheels, "native", "2.0", NATIVE_2)
    build_wheel(wheels, "plain", "1.0")
    build_wheel(wheels, "plain", "2.0")
    python = make_good_venv(tmp_path, wheels, {"native": "1.0", "plain": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"native": "1.0", "plain": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"native": "2.0", "plain": "2.0"}, python=str(python))
    result = bisect(good, bad, command=["python", str(oracle_script), "native"], index=_index(wheels),
                    cache_dir=tmp_path / "c")
    assert result.status == "found", result.reason
    assert [c.name for c in result.culprits] == ["native"]
    decisive = result.trials[result.decisive_trial - 1]
    assert decisive.mode == "venv" and "undefined symbol" in decisive.why_venv
    plain_only = [t for t in result.trials if t.bad_side == ["plain"]]
    assert all(t.mode == "overlay" for t in plain_only)


def _patch(path: Path, name: str, **fields) -> None:
    import json

    snap = json.loads(path.read_text())
    snap["packages"][name].update(fields)
    path.write_text(json.dumps(snap))


def test_package_installed_from_a_url_is_asked_for_by_its_url(tmp_path, wheels, oracle_script) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    build_wheel(wheels, "urlpkg", "1.0")
    wheel = build_wheel(elsewhere, "urlpkg", "2.0", "BROKEN = True\n")  # not in the find-links folder
    python = make_good_venv(tmp_path, wheels, {"urlpkg": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"urlpkg": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"urlpkg": "2.0"}, python=str(python))
    _patch(bad, "urlpkg", direct_url={"url": wheel.as_uri(), "archive_info": {}})
    result = bisect(good, bad, command=["python", str(oracle_script), "urlpkg"], index=_index(wheels),
                    cache_dir=tmp_path / "c")
    assert result.status == "found", result.reason
    assert [c.name for c in result.culprits] == ["urlpkg"]


def test_editable_bad_side_is_left_out_with_a_warning(tmp_path, wheels, oracle_script) -> None:
    build_wheel(wheels, "tok", "1.0")
    build_wheel(wheels, "tok", "2.0", "BROKEN = True\n")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0", "mine": "0.1"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "2.0", "mine": "0.2"}, python=str(python))
    _patch(bad, "mine", editable=True)
    result = bisect(good, bad, command=["python", str(oracle_script), "tok"], index=_index(wheels),
                    cache_dir=tmp_path / "c")
    assert [c.name for c in result.changes] == ["tok"] and [c.name for c in result.culprits] == ["tok"]
    assert any("mine" in w and "editable" in w for w in result.warnings)


def test_missing_good_interpreter_falls_back_to_this_one(tmp_path, wheels, oracle_script) -> None:
    build_wheel(wheels, "tok", "1.0")
    build_wheel(wheels, "tok", "2.0", "BROKEN = True\n")
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0"}, python="/nonexistent/bin/python")
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "2.0"}, python="/nonexistent/bin/python")
    result = bisect(good, bad, command=["python", str(oracle_script), "tok"], index=_index(wheels),
                    cache_dir=tmp_path / "c")
    assert result.python == sys.executable
    assert any("/nonexistent/bin/python does not exist here" in w for w in result.warnings)
    assert [c.name for c in result.culprits] == ["tok"]
    # this interpreter lacks tok: even the good side's 1.0 comes from an overlay
    assert all(t.mode == "overlay" for t in result.trials)


def test_unbuildable_whole_set_names_the_install_error(tmp_path, wheels) -> None:
    build_wheel(wheels, "tok", "1.0")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "7.0"}, python=str(python))
    result = bisect(good, bad, command=["python", "-c", "pass"], index=_index(wheels), cache_dir=tmp_path / "c")
    assert result.status == "undetermined" and "could not be built" in result.reason and "tok" in result.reason
