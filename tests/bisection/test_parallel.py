"""Parallel bisect: trials run ahead of the search, verdicts consumed in its order.

The acceptance: on the 16-change world, --parallel K (threads, and Ray tasks on a real
local 2-node cluster) finds the same culprit with the same list of trials as the
sequential search.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
from pathlib import Path
from typing import Any

import pytest

from parity.bisection import IndexOptions, bisect
from parity.bisection.ddmin import Verdict, first_bad, minimize, next_needed, speculate
from parity.bisection.parallel import Prefetcher, TrialOutcome

ITEMS = [f"p{i:02d}" for i in range(16)]


def _oracle(culprits: set[str]) -> Any:
    def verdict(subset: frozenset[str]) -> Verdict:
        return Verdict.BAD if culprits <= subset else Verdict.GOOD
    return verdict


def _sequential(culprits: set[str]) -> tuple[Any, list[frozenset[str]]]:
    asked: list[frozenset[str]] = []
    oracle = _oracle(culprits)

    def test(subset: frozenset[str]) -> Verdict:
        asked.append(subset)
        return oracle(subset)

    return minimize(ITEMS, test), asked


def _prefetched(culprits: set[str], k: int) -> tuple[Any, list[frozenset[str]], int]:
    oracle, consumed = _oracle(culprits), []
    with cf.ThreadPoolExecutor(k) as pool:
        def submit(spec: Any, key: frozenset[str]) -> cf.Future[TrialOutcome]:
            return pool.submit(lambda: TrialOutcome(oracle(key)))

        def consume(key: frozenset[str], out: TrialOutcome) -> Verdict:
            consumed.append(key)
            return out.verdict

        fetcher = Prefetcher(k, submit, None, lambda key: key, consume)  # type: ignore[arg-type]
        result = fetcher.run(lambda test: minimize(ITEMS, test))
    return result, consumed, fetcher.unused


@pytest.mark.parametrize("culprits", [{"p00"}, {"p07"}, {"p15"}, {"p03", "p12"}])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_prefetched_search_asks_what_the_sequential_one_asks(culprits, k) -> None:
    expected, asked = _sequential(culprits)
    result, consumed, unused = _prefetched(culprits, k)
    assert (result.status, result.culprits) == (expected.status, expected.culprits)
    assert consumed == asked
    assert unused <= 4 * len(asked) and (k > 1 or unused == 0)


def test_speculation_proposes_the_next_trial_then_both_outcomes() -> None:
    def search(test: Any) -> Any:
        return minimize(ITEMS, test)

    first = next_needed(search, {})
    assert first == frozenset(ITEMS)
    proposals = speculate(search, {}, (), 3)
    assert proposals[0] == first and len(proposals) == 3
    after_bad = next_needed(search, {first: Verdict.BAD})
    assert proposals[1] == after_bad  # BAD first: the likely outcome of the whole set
    assert speculate(search, {}, {first}, 2)[0] == after_bad  # a running trial is not proposed again
    versions = [str(v) for v in range(10)]
    assert next_needed(lambda test: first_bad(versions, test), {}) == "4"


def _index(wheels: Path) -> IndexOptions:
    return IndexOptions(find_links=(str(wheels),), no_index=True)


def _trial_list(result: Any) -> list[tuple[str, tuple[str, ...], str]]:
    return [(t.stage, tuple(t.bad_side), t.verdict.value) for t in result.trials]


def _raylets() -> set[str]:
    import subprocess

    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
    return {line for line in out.splitlines() if "/raylet" in line}


@pytest.mark.slow
def test_parallel_threads_and_ray_find_the_sequential_culprit_with_the_same_trials(
        sixteen, wheels, oracle_script, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    good, bad = sixteen({"pkg-11"})
    command = ["python", str(oracle_script), "pkg-11"]
    sequential = bisect(good, bad, command=command, index=_index(wheels), cache_dir=tmp_path / "c0")
    assert [c.name for c in sequential.culprits] == ["pkg-11"]
    caches = (tmp_path / f"c{i}" for i in itertools.count(1))
    for k in (2, 4):
        threads = bisect(good, bad, command=command, index=_index(wheels), cache_dir=next(caches), parallel=k)
        assert _trial_list(threads) == _trial_list(sequential)
        assert threads.decisive_trial == sequential.decisive_trial
        assert threads.parallel is not None and threads.parallel["backend"] == "threads"
    before = _raylets()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        address = c.address
        on_ray = bisect(good, bad, command=command, index=_index(wheels), cache_dir=next(caches), parallel=2,
                        ray=address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
    assert _raylets() <= before, "a raylet of the test cluster outlived it"
    assert _trial_list(on_ray) == _trial_list(sequential)
    assert [c.name for c in on_ray.culprits] == ["pkg-11"] and on_ray.exit_code == 1
    assert on_ray.parallel == {"k": 2, "backend": "ray", "address": address,
                               "speculative": on_ray.parallel["speculative"]}
    assert all(t.node for t in on_ray.trials) and "PYTHONPATH=" in (on_ray.reproduce or "")


def test_parallel_must_be_positive(tmp_path) -> None:
    from parity.errors import BisectError

    with pytest.raises(BisectError, match="--parallel 0"):
        bisect(tmp_path / "a.json", tmp_path / "b.json", command=["true"], parallel=0)


def test_cli_parallel_flag(sixteen, wheels, oracle_script, tmp_path, capsys) -> None:
    import json

    from parity.cli.main import main

    good, bad = sixteen({"pkg-03"})
    code = main(["bisect", "--good", str(good), "--bad", str(bad), "--find-links", str(wheels), "--no-index",
                 "--cache-dir", str(tmp_path / "c"), "--parallel", "3", "--json", "--",
                 "python", str(oracle_script), "pkg-03"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and [c["name"] for c in doc["culprits"]] == ["pkg-03"]
    assert doc["parallel"]["k"] == 3 and doc["parallel"]["backend"] == "threads"


def test_cli_ray_without_ray_installed_names_the_extra(monkeypatch, sixteen, wheels, oracle_script, tmp_path,
                                                       capsys) -> None:
    import sys

    from parity.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)
    good, bad = sixteen({"pkg-03"})
    code = main(["bisect", "--good", str(good), "--bad", str(bad), "--find-links", str(wheels), "--no-index",
                 "--cache-dir", str(tmp_path / "c"), "--ray", "--", "python", str(oracle_script), "pkg-03"])
    assert code == 2 and "pip install 'parity[ray]'" in capsys.readouterr().err


def test_unjudged_trials_are_stepped_around_in_the_same_order() -> None:
    unjudged = {frozenset(ITEMS[:8]), frozenset(ITEMS[:4])}

    def verdict(subset: frozenset[str]) -> Verdict:
        return Verdict.UNJUDGED if subset in unjudged else _oracle({"p05"})(subset)

    asked: list[frozenset[str]] = []
    expected = minimize(ITEMS, lambda s: asked.append(s) or verdict(s))
    consumed: list[frozenset[str]] = []
    with cf.ThreadPoolExecutor(3) as pool:
        fetcher = Prefetcher(3, lambda spec, key: pool.submit(lambda: TrialOutcome(verdict(key))), None,  # type: ignore[arg-type]
                             lambda key: key, lambda key, out: consumed.append(key) or out.verdict)  # type: ignore[arg-type,func-returns-value]
        result = fetcher.run(lambda test: minimize(ITEMS, test))
    assert (result.status, result.culprits) == (expected.status, expected.culprits) == ("found", ["p05"])
    assert consumed == asked


def test_narrow_with_parallel_trials_matches_the_sequential_narrowing(tmp_path, wheels, oracle_script) -> None:
    from tinywheels import build_wheel, make_good_venv, write_snapshot

    for v in ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6"]:
        build_wheel(wheels, "tok", v, "BROKEN = True\n" if v >= "1.4" else "")
    python = make_good_venv(tmp_path, wheels, {"tok": "1.0"})
    good = write_snapshot(tmp_path / "good.json", {"tok": "1.0"}, python=str(python))
    bad = write_snapshot(tmp_path / "bad.json", {"tok": "1.6"}, python=str(python))
    command = ["python", str(oracle_script), "tok"]
    runs = [bisect(good, bad, command=command, narrow=True, index=_index(wheels), cache_dir=tmp_path / f"c{k}",
                   parallel=k) for k in (None, 3)]
    assert runs[0].narrowed[0]["first_bad"] == "1.4"
    assert runs[1].narrowed == runs[0].narrowed
    assert _trial_list(runs[1]) == _trial_list(runs[0])


def test_a_lost_task_cannot_judge_but_a_bug_on_the_node_is_raised() -> None:
    ray_exceptions = pytest.importorskip("ray.exceptions")
    from parity.bisection.parallel import _result

    lost: cf.Future[TrialOutcome] = cf.Future()
    lost.set_exception(ray_exceptions.WorkerCrashedError())
    outcome = _result(lost)
    assert outcome.verdict is Verdict.UNJUDGED and "the trial's task failed" in (outcome.note or "")
    try:
        raise KeyError("pkg-00")
    except KeyError as exc:
        bug = ray_exceptions.RayTaskError("run_trial", "traceback", exc).as_instanceof_cause()
    crashed: cf.Future[TrialOutcome] = cf.Future()
    crashed.set_exception(bug)
    with pytest.raises(KeyError):
        _result(crashed)
