"""The bisect cache: a size limit with least-recently-used pruning, --cache-info, --prune."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from parity.bisection import IndexOptions, bisect
from parity.bisection.cache import ENV_MAX, entries, info, limit, parse_size, prune
from parity.errors import BisectError

MB = 10**6


def _entry(cache: Path, name: str, size: int, age_s: float, marker: str = ".parity-trial.json") -> Path:
    """A finished trial folder holding ``size`` bytes, last used ``age_s`` seconds ago."""
    folder = cache / name
    folder.mkdir(parents=True)
    (folder / "payload.bin").write_bytes(b"\1" * size)
    if marker:
        (folder / marker).write_text(json.dumps({"mode": "overlay"}))
        when = time.time() - age_s
        os.utime(folder / marker, (when, when))
    else:
        when = time.time() - age_s
        os.utime(folder, (when, when))
    return folder


def _cache(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    _entry(cache, "overlay-old", 3 * MB, 300)
    _entry(cache, "venv-middle", 3 * MB, 200)
    _entry(cache, "overlay-new", 3 * MB, 100)
    _entry(cache, "parity-self/0.1.0-abc", 1 * MB, 250, marker=".parity-self.txt")
    return cache


@pytest.mark.parametrize(("text", "expected"), [("10G", 10**9 * 10), ("500MB", 500 * MB), ("2GiB", 2 * 2**30),
                                                ("1.5g", 1_500_000_000), ("4096", 4096), ("0", 0)])
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["ten gigs", "-1G", "5X", ""])
def test_bad_size_names_the_flag(text: str) -> None:
    with pytest.raises(BisectError, match="--cache-max-size"):
        parse_size(text)


def test_entries_are_listed_least_recently_used_first_with_sizes(tmp_path: Path) -> None:
    found = entries(_cache(tmp_path))
    assert [e.path.name for e in found] == ["overlay-old", "0.1.0-abc", "venv-middle", "overlay-new"]
    assert [e.kind for e in found] == ["overlay", "parity", "venv", "overlay"]
    assert all(e.size >= 3 * MB for e in found if e.kind != "parity")


def test_prune_removes_least_recently_used_until_under_the_limit(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    result = prune(cache, "7M")
    assert [e.path.name for e in result.removed] == ["overlay-old", "0.1.0-abc"]
    assert sorted(p.name for p in cache.iterdir()) == ["overlay-new", "parity-self", "venv-middle"]
    assert result.info.total <= 7 * MB and result.freed >= 4 * MB


def test_prune_keeps_what_is_in_use(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    result = prune(cache, "1M", keep=[cache / "overlay-old"])
    assert (cache / "overlay-old").is_dir()
    assert {e.path.name for e in result.removed} == {"0.1.0-abc", "venv-middle", "overlay-new"}


def test_prune_all_and_unfinished_builds(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    _entry(cache, ".overlay-x.abc.tmp", MB, 7200, marker="")  # an interrupted build, 2 hours old
    _entry(cache, ".overlay-y.def.tmp", MB, 5, marker="")  # perhaps being built right now
    assert [e.path.name for e in prune(cache, "100G").removed] == [".overlay-x.abc.tmp"]
    prune(cache, everything=True)
    assert [e.path.name for e in entries(cache)] == [".overlay-y.def.tmp"]


def test_limit_from_flag_then_environment_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MAX, raising=False)
    value, source = limit(tmp_path)
    assert 0 < value <= 10 * 10**9 and "default" in source
    monkeypatch.setenv(ENV_MAX, "2G")
    assert limit(tmp_path) == (2 * 10**9, f"${ENV_MAX}=2G")
    assert limit(tmp_path, "3G")[0] == 3 * 10**9
    monkeypatch.setenv(ENV_MAX, "lots")
    with pytest.raises(BisectError, match=ENV_MAX):
        limit(tmp_path)


def test_cache_info_cli(run_cli, tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    code, out, _ = run_cli("bisect", "--cache-info", "--cache-dir", cache, "--cache-max-size", "8M", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["path"] == str(cache.resolve()) and doc["n_entries"] == 4 and doc["limit_bytes"] == 8 * MB
    assert doc["total_bytes"] == sum(e["bytes"] for e in doc["entries"]) >= 10 * MB
    assert doc["limit_source"] == "--cache-max-size 8M"
    code, out, _ = run_cli("bisect", "--cache-info", "--cache-dir", cache)
    assert code == 0 and str(cache.resolve()) in out and "overlay-old" in out and "4 entries" in out


def test_prune_cli_to_the_limit_then_all(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _cache(tmp_path)
    monkeypatch.setenv(ENV_MAX, "7M")
    code, out, _ = run_cli("bisect", "--prune", "--cache-dir", cache)
    assert code == 0 and "removed 2 entries" in out
    assert not (cache / "overlay-old").exists() and (cache / "overlay-new").is_dir()
    code, out, _ = run_cli("bisect", "--cache-dir", cache, "--prune", "all", "--json")
    assert code == 0 and json.loads(out)["n_entries"] == 0 and not (cache / "overlay-new").exists()


def test_bad_flags_exit_2(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("bisect", "--cache-info", "--cache-dir", tmp_path, "--cache-max-size", "huge")
    assert code == 2 and "--cache-max-size huge" in err
    code, _, err = run_cli("bisect", "--cache-dir", tmp_path, "--prune", "some")
    assert code == 2 and "--prune" in err
    code, _, err = run_cli("bisect", "--bad", "b.json", "--", "true")
    assert code == 2 and "--good" in err


def test_a_bisect_keeps_its_cache_within_the_limit(sixteen, wheels: Path, oracle_script: Path, tmp_path: Path) -> None:
    good, bad = sixteen({"pkg-05"})
    cache = tmp_path / "cache"
    result = bisect(good, bad, command=["python", str(oracle_script), "pkg-05"], cache_dir=cache,
                    index=IndexOptions((str(wheels),), no_index=True), cache_max_size="1")
    assert result.status == "found" and [c.name for c in result.culprits] == ["pkg-05"]
    assert result.cache is not None and result.cache["removed"] >= len([t for t in result.trials if t.mode != "base"])
    assert info(cache, "1").total <= 1 and any("limit" in w for w in result.warnings)
    roomy = bisect(good, bad, command=["python", str(oracle_script), "pkg-05"], cache_dir=cache,
                   index=IndexOptions((str(wheels),), no_index=True), cache_max_size="10G")
    assert roomy.cache is not None and roomy.cache["removed"] == 0 and roomy.cache["total_bytes"] > 0
