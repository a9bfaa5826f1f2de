"""``bisect()``: which package change between a good and a bad environment breaks the oracle.

The steps: load both sides, compute the changed set, build trial environments on
the good side's interpreter (:mod:`parity.bisection.trials`), judge each with the oracle
(:mod:`parity.bisection.oracle`), search with :func:`parity.bisection.ddmin.minimize`, and
optionally narrow each culprit to its first bad release.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._text import one_line
from parity.bisection.cache import parse_size
from parity.bisection.changes import (
    Change,
    changes_between,
    check_same_python,
    full_version,
    python_version,
)
from parity.bisection.ddmin import MinimizeResult, NarrowResult, Verdict, first_bad, minimize
from parity.bisection.oracle import (
    Oracle,
    OracleRun,
    binary_mismatch,
    decided,
    majority,
    oracle_from_spec,
)
from parity.bisection.selfwheel import imports_this_parity, parity_wheel
from parity.bisection.trials import (
    IndexOptions,
    InstallError,
    TrialBuilder,
    TrialEnv,
    base_versions,
    default_cache_dir,
    find_installer,
    releases_between,
    releases_from_index,
    releases_in_folders,
)
from parity.errors import EXIT_FINDING, EXIT_OK, EXIT_USAGE, BisectError

SCHEMA = "parity.bisect/1"

#: status -> (exit code, what it means)
STATUS_EXIT = {"found": EXIT_FINDING, "no-changes": EXIT_OK, "not-reproduced": EXIT_USAGE, "good-fails": EXIT_USAGE,
               "undetermined": EXIT_USAGE}


@dataclass
class Trial:
    """One trial: which changes came from the bad side, how it was built, what the oracle said."""

    index: int
    stage: str
    bad_side: list[str]
    packages: dict[str, str | None]
    mode: str = "pending"
    why_venv: str | None = None
    verdict: Verdict | None = None
    seconds: float = 0.0
    build_seconds: float = 0.0
    cached: bool = False
    runs: list[OracleRun] = field(default_factory=list)
    note: str | None = None
    reproduce: str | None = None
    node: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "stage": self.stage, "bad_side": self.bad_side, "packages": self.packages,
            "mode": self.mode, "why_venv": self.why_venv,
            "verdict": self.verdict.value if self.verdict else None,
            "seconds": round(self.seconds, 3), "build_seconds": round(self.build_seconds, 3),
            "cached": self.cached, "runs": [r.to_json() for r in self.runs], "note": self.note,
            "reproduce": self.reproduce, "node": self.node,
        }


@dataclass
class BisectResult:
    """What ``parity bisect`` found. ``status`` is one of :data:`STATUS_EXIT`."""

    status: str
    reason: str
    good: str
    bad: str
    oracle: str
    changes: list[Change] = field(default_factory=list)
    culprits: list[Change] = field(default_factory=list)
    suspects: list[Change] = field(default_factory=list)
    narrowed: list[dict[str, Any]] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    decisive_trial: int | None = None
    reproduce: str | None = None
    python: str | None = None
    installer: str | None = None
    warnings: list[str] = field(default_factory=list)
    cache: dict[str, Any] | None = None
    #: with --parallel/--ray: {"k", "backend": "threads"|"ray", "speculative": trials run but never asked for}
    parallel: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return STATUS_EXIT[self.status]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "status": self.status, "reason": self.reason,
            "good": self.good, "bad": self.bad, "oracle": self.oracle,
            "python": self.python, "installer": self.installer,
            "changes": [c.to_json() for c in self.changes],
            "culprits": [c.to_json() for c in self.culprits],
            "suspects": [c.to_json() for c in self.suspects],
            "narrowed": self.narrowed, "n_trials": len(self.trials),
            "trials": [t.to_json() for t in self.trials],
            "decisive_trial": self.decisive_trial, "reproduce": self.reproduce,
            "warnings": self.warnings, "cache": self.cache, "parallel": self.parallel,
        }


#: progress(event, trial): event is "start" (before building) or "done".
Progress = Callable[[str, Trial], None]


def bisect(
    good: str | os.PathLike[str],
    bad: str | os.PathLike[str],
    oracle: Oracle | str | None = None,
    command: Sequence[str] = (),
    *,
    runs: int = 1,
    narrow: bool = False,
    index: IndexOptions | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_python_mismatch: bool = False,
    installer: str | None = None,
    timeout: float | None = None,
    progress: Progress | None = None,
    cache_max_size: str | None = None,
    target: str | None = None,
    parallel: int | None = None,
    ray: str | None = None,
) -> BisectResult:
    """Find the package change(s) between ``good`` and ``bad`` that break the oracle.

    ``good``/``bad``: snapshot files or record directories. ``oracle``: an
    :class:`Oracle`, or a spec ``verify:DIR`` / ``bench:FILE``; ``command``: a command
    instead (exit 0 good, 1 bad, else could not judge). Neither: ``parity verify`` on
    whichever side is a record directory, ``good`` first. ``runs``: majority of that
    many oracle runs per trial (runs stop once the majority is certain). ``installer``: "uv" or "pip" (default: uv when found). ``timeout``: seconds
    per oracle run (None: no limit). ``cache_max_size``: the trial cache's size limit
    (e.g. "10G"; default :func:`parity.bisection.cache.limit`): least recently used
    entries are removed after each new trial environment and at the end. Never prints;
    ``progress`` is called per trial. ``target``: TARGET for the verify/bench oracles
    (default: the recorded one, only when it is a .py file in this folder outside the record).
    ``parallel``: up to that many trials at once (threads here, or Ray tasks with ``ray``);
    ``ray``: the Ray cluster's address, "" for a local one (each trial is built and judged
    on the node that runs it). Either way the verdicts reach the search in its sequential
    order: same culprit, same list of trials as without them.
    """
    if runs < 1:
        raise BisectError(f"--runs {runs}: must be at least 1", fix="pass --runs 1 or more (odd numbers avoid ties)")
    if timeout is not None and timeout <= 0:
        raise BisectError(f"--timeout {timeout}: must be more than 0 seconds", fix="pass a positive number of seconds")
    if cache_max_size is not None:
        parse_size(cache_max_size)  # a bad value fails before any trial
    if parallel is not None and parallel < 1:
        raise BisectError(f"--parallel {parallel}: must be at least 1", fix="pass --parallel 2 or more")
    if not isinstance(oracle, Oracle):
        oracle = oracle_from_spec(oracle, command, str(good), str(bad), target)
    session = _Session.open(str(good), str(bad), oracle, (), runs, index or IndexOptions(),
                            cache_dir, allow_python_mismatch, installer, timeout, progress)
    session.cache_max = cache_max_size
    if not session.changes:
        return session.result("no-changes", "the two environments have the same packages: nothing to bisect")
    if parallel is None and ray is None:
        result = _search(session, narrow)
    else:
        result = _search_in_parallel(session, narrow, parallel, ray)
    result.cache = session.prune_cache(keep=(), during=False)
    if result.cache and result.cache["removed"]:
        result.warnings.append(f"trial cache over its limit ({result.cache['limit_source']}): removed "
                               f"{result.cache['removed']} least recently used entries")
    return result


def _search(session: _Session, narrow: bool) -> BisectResult:
    outcome = session.fetch("search", frozenset(), None, lambda test: minimize(session.changes, test))
    result = session.result_from(outcome)
    if narrow and result.status == "found":
        result.narrowed = [session.narrow(c, result.culprits) for c in result.culprits]
    return result


def _search_in_parallel(session: _Session, narrow: bool, k: int | None, ray: str | None) -> BisectResult:
    """The same search with trials run ahead of it (:mod:`parity.bisection.parallel`)."""
    from parity.bisection import parallel as par

    pool = par.ray_pool(ray or None) if ray is not None else par.local_pool(k or 1)
    with pool as (submit, backend):
        width = k or 1
        if backend == "ray":  # a trial task takes one CPU: beyond the cluster's, the needed trial would queue
            cpus = _cluster_cpus()
            if k is not None and k > cpus:
                session.warnings.append(f"--parallel {k}: the Ray cluster has {cpus} CPU(s); "
                                        f"{cpus} trial(s) ran at a time")
            width = min(k or cpus, cpus)
        spec = session.build_spec()
        unused = 0

        def fetch(stage: str, held: frozenset[Change], name: str | None, search: Any) -> Any:
            nonlocal unused

            def subset(key: Any) -> frozenset[Change]:
                return held if name is not None else key  # type: ignore[no-any-return]

            def override(key: Any) -> dict[str, str]:
                return {name: key} if name is not None else {}

            fetcher = par.Prefetcher(width, submit, spec, lambda key: session.job_for(subset(key), override(key)),
                                     lambda key, out: session.consume(stage, subset(key), override(key), out))
            found = fetcher.run(search)
            unused += fetcher.unused
            return found

        session.fetch = fetch  # type: ignore[method-assign]
        result = _search(session, narrow)
    result.parallel = {"k": width, "backend": backend, "address": ray or None, "speculative": unused}
    return result


def _cluster_cpus() -> int:
    """CPUs of the connected Ray cluster: one trial per CPU when --parallel is not given."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@dataclass
class _Session:
    """State of one bisect: sides, trial builder, oracle and the trials run so far."""

    good: str
    bad: str
    good_snap: dict[str, Any]
    bad_snap: dict[str, Any]
    changes: list[Change]
    oracle: Oracle
    runs: int
    index: IndexOptions
    timeout: float | None
    progress: Progress | None
    warnings: list[str]
    python: Path | None = None
    builder: TrialBuilder | None = None
    trials: list[Trial] = field(default_factory=list)
    cache_max: str | None = None
    removed_from_cache: int = 0

    @classmethod
    def open(cls, good: str, bad: str, oracle: Oracle | str | None, command: Sequence[str], runs: int,
             index: IndexOptions, cache_dir: Any, allow_mismatch: bool, installer: str | None,
             timeout: float | None, progress: Progress | None) -> _Session:
        from parity.env import load_snapshot

        good_snap, bad_snap = load_snapshot(good), load_snapshot(bad)
        warnings = [w for w in [check_same_python(good_snap, bad_snap, allow_mismatch)] if w]
        changes = changes_between(good_snap, bad_snap)
        for change in _editable_changes(good_snap, bad_snap, changes):
            changes.remove(change)
            warnings.append(f"{change.name} {change.bad} is an editable install on the bad side: left out of "
                            "the search (install that working tree into the good environment to test it)")
        for change in [c for c in changes if c.name == "parity"]:
            changes.remove(change)
            warnings.append(f"parity itself differs ({change.good or '(absent)'} -> {change.bad or '(absent)'}): "
                            "left out of the search; every trial runs this parity")
        resolved = oracle if isinstance(oracle, Oracle) else oracle_from_spec(oracle, command, good, bad)
        session = cls(good=good, bad=bad, good_snap=good_snap, bad_snap=bad_snap, changes=changes,
                      oracle=resolved, runs=runs, index=index, timeout=timeout, progress=progress,
                      warnings=warnings, python=None, builder=None)
        if changes:
            # Absolute, so the reproduce line works from any folder.
            session._prepare(Path(cache_dir).resolve() if cache_dir else default_cache_dir(), installer)
        return session

    def _prepare(self, cache_dir: Path, installer: str | None) -> None:
        self.index.check()
        _check_cache_dir(cache_dir)
        self.python, note = _base_python(self.good_snap)
        if note:
            self.warnings.append(note)
        base = base_versions(self.python, [c.name for c in self.changes])
        tool = find_installer(self.python, installer)
        if not self.oracle.runs_parity:
            self.oracle.check(TrialEnv("base", self.python, None))  # before anything is written
        # The running parity goes into every trial, so parity's own oracles run in full venvs too.
        wheel = parity_wheel(cache_dir)
        self.builder = TrialBuilder(self.python, base, self.index, cache_dir, tool, self._venv_requirements,
                                    self._requirement, parity=wheel,
                                    parity_on_path=self.oracle.runs_parity and not imports_this_parity(self.python))
        if self.oracle.runs_parity:
            self.oracle.check(TrialEnv("base", self.python, None, extra_paths=list(self.builder.extra_paths)))

    # -- trials -----------------------------------------------------------------------

    def test_subset(self, subset: frozenset[Change]) -> Verdict:
        return self._trial("search", subset, {})

    def fetch(self, stage: str, held: frozenset[Change], name: str | None, search: Any) -> Any:
        """Run ``search`` with one trial at a time: a search key is a subset of the changes
        (``name`` None) or a version of ``name`` tried with ``held`` from the bad side."""
        if name is None:
            return search(self.test_subset)
        return search(lambda version: self._trial(stage, held, {name: version}))

    # -- trials run elsewhere (parallel.py): a job out, an outcome back, recorded in order --

    def build_spec(self) -> Any:
        from parity.bisection.parallel import BuildSpec

        assert self.builder is not None and self.python is not None
        return BuildSpec(str(self.python), dict(self.builder.base), self.index, str(self.builder.cache_dir),
                         self.builder.installer.name, bool(self.builder.extra_paths), self.oracle, self.runs,
                         self.timeout)

    def job_for(self, subset: frozenset[Change], override: Mapping[str, str]) -> Any:
        from parity.bisection.parallel import TrialJob

        wanted = self._wanted(subset, override)
        reqs = {n: self._requirement(n, v) for n, v in wanted.items() if v is not None}
        return TrialJob(wanted, reqs, self._venv_requirements(wanted))

    def consume(self, stage: str, subset: frozenset[Change], override: Mapping[str, str], outcome: Any) -> Verdict:
        """Record a trial run elsewhere as the next one, as :meth:`_trial` would have."""
        trial = self._start(stage, subset, override)
        for name in ("verdict", "mode", "why_venv", "cached", "build_seconds", "seconds", "runs", "note",
                     "reproduce", "node"):
            setattr(trial, name, getattr(outcome, name))
        self._emit("done", trial)
        return trial.verdict or Verdict.UNJUDGED

    def _wanted(self, subset: frozenset[Change], override: Mapping[str, str]) -> dict[str, str | None]:
        wanted = {c.name: c.version(c in subset) for c in self.changes}
        wanted.update(override)
        return wanted

    def _start(self, stage: str, subset: frozenset[Change], override: Mapping[str, str]) -> Trial:
        """The next trial, numbered, listed and announced."""
        wanted = self._wanted(subset, override)
        bad_side = [c.name if c.name not in override else f"{c.name}=={override[c.name]}"
                    for c in self.changes if c in subset]
        trial = Trial(len(self.trials) + 1, stage, bad_side, wanted)
        self.trials.append(trial)
        self._emit("start", trial)
        return trial

    def _trial(self, stage: str, subset: frozenset[Change], override: Mapping[str, str]) -> Verdict:
        trial = self._start(stage, subset, override)
        wanted = trial.packages
        start = time.perf_counter()
        try:
            self._build_and_judge(trial, wanted)
        except InstallError as exc:
            trial.verdict, trial.note = Verdict.SKIP, f"could not build: {exc}"
            if trial.mode == "pending":
                trial.mode = "none"
        trial.seconds = time.perf_counter() - start
        self._emit("done", trial)
        return trial.verdict or Verdict.UNJUDGED

    def _build_and_judge(self, trial: Trial, wanted: Mapping[str, str | None]) -> None:
        assert self.builder is not None
        env = self._built(wanted)
        self._judge(trial, env)
        mismatch = binary_mismatch(trial.runs) if env.mode == "overlay" else None
        if mismatch:
            # An overlay mixes bad-side binaries with good-side ones; a full venv does not.
            env = self._built(wanted, force_venv=f"overlay hit a binary incompatibility: {mismatch}")
            self._judge(trial, env)

    def _built(self, wanted: Mapping[str, str | None], force_venv: str | None = None) -> TrialEnv:
        """The trial environment; a new one may push the cache over its limit, so prune
        (never the one just built, nor the parity wheel every venv trial installs)."""
        assert self.builder is not None
        env = self.builder.build(wanted, force_venv=force_venv)
        if not env.cached and env.path is not None:
            self.prune_cache(keep=[env.path])
        return env

    def prune_cache(self, keep: Sequence[Path], during: bool = True) -> dict[str, Any] | None:
        """Prune the trial cache to its limit; a summary for the result (None: no cache used).
        ``during`` the bisect, the parity wheel that venv trials install is kept too."""
        if self.builder is None:
            return None
        from parity.bisection import cache

        wheel = [self.builder.parity.wheel.parent] if self.builder.parity and during else []
        kept = [*keep, *wheel]
        pruned = cache.prune(self.builder.cache_dir, self.cache_max, keep=kept)
        self.removed_from_cache += len(pruned.removed)
        return {"path": str(pruned.info.path), "total_bytes": pruned.info.total, "limit_bytes": pruned.info.limit,
                "limit_source": pruned.info.limit_source, "removed": self.removed_from_cache}

    def _judge(self, trial: Trial, env: TrialEnv) -> None:
        trial.mode, trial.why_venv, trial.cached = env.mode, env.why, env.cached
        trial.build_seconds += env.build_seconds
        trial.runs = []
        for _ in range(self.runs):
            trial.runs.append(self.oracle.run(env, self.timeout))
            if decided(trial.runs, self.runs):
                break  # the remaining runs cannot change the majority
        trial.verdict = majority(trial.runs, self.runs)
        trial.reproduce = self.oracle.reproduce(env)

    def _emit(self, event: str, trial: Trial) -> None:
        if self.progress is not None:
            self.progress(event, trial)

    def _requirement(self, name: str, version: str) -> str:
        """``name @ URL`` when a side installed that version from a URL (an archive or a
        VCS checkout: not on any index), else ``name==version``."""
        for snap in (self.bad_snap, self.good_snap):
            entry = _entry(snap, name)
            direct = entry.get("direct_url") if entry else None
            if entry and isinstance(direct, dict) and direct.get("url") and full_version(entry) == version:
                vcs = direct.get("vcs_info") or {}
                url = str(direct["url"])
                if vcs.get("vcs") and vcs.get("commit_id"):
                    url = f"{vcs['vcs']}+{url}@{vcs['commit_id']}"
                return f"{name} @ {url}"
        return f"{name}=={version}"

    def _venv_requirements(self, wanted: Mapping[str, str | None]) -> list[str]:
        """Exact requirement lines for a full venv: the good snapshot with ``wanted`` applied."""
        snap = copy.deepcopy(self.good_snap)
        packages: dict[str, Any] = {}
        from parity.env.snapshots import canonical_name

        for key, entry in snap["packages"].items():
            packages[canonical_name(key)] = entry
        bad_packages = {canonical_name(k): v for k, v in self.bad_snap["packages"].items()}
        for name, version in wanted.items():
            packages.pop(name, None)
            if version is None:
                continue
            source = next((p.get(name) for p in (bad_packages, snap["packages"]) if p.get(name)
                           and full_version(p[name]) == version), None)
            packages[name] = dict(source) if source else {"name": name, "version": version}
        snap["packages"] = packages
        return requirement_lines(snap)

    # -- results ----------------------------------------------------------------------

    def result(self, status: str, reason: str) -> BisectResult:
        return BisectResult(status, reason, self.good, self.bad, self.oracle.label, changes=list(self.changes),
                            trials=self.trials, python=str(self.python) if self.python else None,
                            installer=self.builder.installer.name if self.builder else None,
                            warnings=self.warnings)

    def result_from(self, outcome: MinimizeResult[Change]) -> BisectResult:
        result = self.result(outcome.status, _reason(outcome, self.changes) + self._skips() + self._unjudged())
        result.culprits = list(outcome.culprits)
        result.suspects = list(outcome.suspects)
        if outcome.decisive is not None:
            decisive = self._trial_of(outcome.decisive)
            if decisive is not None:
                result.decisive_trial, result.reproduce = decisive.index, decisive.reproduce
        return result

    def _skips(self) -> str:
        """Why trials could not be built, for the reason line (the install error names the package)."""
        skipped = [t for t in self.trials if t.verdict is Verdict.SKIP]
        if not skipped:
            return ""
        hint = ""
        if self.builder is not None and self.builder.installer.name == "uv" and not self.index.args():
            # uv reads uv.toml and UV_* variables, not pip.conf: a pip-only index setup is invisible to it.
            hint = "; uv does not read pip's configuration: pass --index-url/--find-links or use --installer pip"
        return f" ({len(skipped)} trial(s) could not be built; trial {skipped[0].index}: {skipped[0].note}{hint})"

    def _unjudged(self) -> str:
        """How the oracle failed to judge, for the reason line."""
        unjudged = [t for t in self.trials if t.verdict is Verdict.UNJUDGED]
        if not unjudged:
            return ""
        runs = [r for r in unjudged[0].runs if r.verdict is Verdict.UNJUDGED]
        how = ", ".join(_exit_text(r.exit_code) for r in runs) or "no majority among the runs"
        said = runs[0].stderr_tail.strip().splitlines()[-1:] if runs else []
        if said:  # the oracle's last words: often the reason (parity's one-line error)
            how += f": {one_line(said[0])[:300]}"
        return f" ({len(unjudged)} trial(s) not judged; trial {unjudged[0].index}: {how})"

    def _trial_of(self, subset: frozenset[Change]) -> Trial | None:
        names = sorted(c.name for c in subset)
        for trial in self.trials:
            if trial.stage == "search" and sorted(trial.bad_side) == names and trial.verdict is Verdict.BAD:
                return trial
        return None

    # -- narrowing --------------------------------------------------------------------

    def narrow(self, culprit: Change, culprits: Sequence[Change]) -> dict[str, Any]:
        """Bisect the releases between the culprit's good and bad versions, the other
        culprits held at their bad versions."""
        out: dict[str, Any] = {"name": culprit.name, "good": culprit.good, "bad": culprit.bad}
        if culprit.kind != "changed" or culprit.good is None or culprit.bad is None:
            return {**out, "status": "not-applicable", "reason": f"a {culprit.kind} change has no releases in between"}
        candidates = releases_in_folders(culprit.name, self.index.find_links)
        if self.python is not None:
            candidates |= releases_from_index(self.python, culprit.name, self.index)
        between = releases_between(candidates, culprit.good, culprit.bad)
        if not between:
            return {**out, "status": "adjacent", "first_bad": culprit.bad, "last_good": culprit.good,
                    "releases": [], "reason": "no final release between the good and the bad version was found"}
        versions = [culprit.good, *between, culprit.bad]
        found: NarrowResult = self.fetch("narrow", frozenset(culprits), culprit.name,
                                         lambda test: first_bad(versions, test))
        return {**out, "status": "exact" if found.exact else "range", "first_bad": found.first_bad,
                "last_good": found.last_good, "skipped": found.skipped, "releases": between,
                "tried": {v: verdict.value for v, verdict in found.tried.items()}}


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit code (timed out or did not start)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"oracle exit code {code}"


def _check_cache_dir(path: Path) -> None:
    """Create the trial cache folder now, so a bad --cache-dir fails before any trial."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BisectError(f"--cache-dir {path}: cannot be used ({exc.strerror})",
                          fix="pass a folder you can write to") from None
    if not os.access(path, os.W_OK):
        raise BisectError(f"--cache-dir {path}: not writable", fix="pass a folder you can write to")


def _entry(snap: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    from parity.env.snapshots import canonical_name

    for key, entry in snap["packages"].items():
        if canonical_name(key) == name and isinstance(entry, dict):
            return entry
    return None


def _editable_changes(good: Mapping[str, Any], bad: Mapping[str, Any], changes: list[Change]) -> list[Change]:
    """Changes whose bad side is an editable install: a working tree on the bad
    machine, which no installer can fetch."""
    out = []
    for change in changes:
        entry = _entry(bad, change.name)
        if entry is not None and entry.get("editable"):
            out.append(change)
    return out


def _base_python(good_snap: Mapping[str, Any]) -> tuple[Path, str | None]:
    """The good snapshot's interpreter when it exists here, else this one (with a note)."""
    recorded = (good_snap.get("python") or {}).get("executable")
    if recorded and Path(recorded).is_file() and os.access(recorded, os.X_OK):
        # abspath, not resolve: a venv's python is a symlink whose location is what makes it the venv.
        return Path(os.path.abspath(recorded)), None
    note = (f"the good snapshot's interpreter {recorded} does not exist here; trials run on {sys.executable}"
            if recorded else f"the good snapshot names no interpreter; trials run on {sys.executable}")
    recorded_version, here = python_version(dict(good_snap)), "{}.{}".format(*sys.version_info[:2])
    if recorded_version and recorded_version != here:
        note += f" (Python {here}, the good side ran {recorded_version})"
    return Path(sys.executable), note


def requirement_lines(snap: Mapping[str, Any]) -> list[str]:
    """Exact requirement lines for a snapshot, from :func:`parity.env.lock.lock`.

    Installer tooling and what the lock cannot pin (editable installs, local folders)
    are left out, as in ``parity lock``'s output.
    """
    from packaging.utils import canonicalize_name

    from parity.env.lock import TOOLING, lock

    return [e.requirement for e in lock(dict(snap)).entries
            if e.requirement and canonicalize_name(e.name) not in TOOLING]


def _reason(outcome: MinimizeResult[Change], changes: Sequence[Change]) -> str:
    if outcome.status == "found":
        names = ", ".join(f"{c.name} {c.good or '(absent)'} -> {c.bad or '(absent)'}" for c in outcome.culprits)
        together = " (only together)" if len(outcome.culprits) > 1 else ""
        return f"{names} breaks the oracle{together}; the other {len(changes) - len(outcome.culprits)} change(s) do not"
    if outcome.status == "not-reproduced":
        return (f"the trial with all {len(changes)} bad-side package(s) passes: the failure does not come from "
                "these package changes (or does not reproduce on this machine)")
    if outcome.status == "good-fails":
        return "the oracle fails on the good environment too: no package change can be blamed"
    return f"could not judge: {outcome.reason}; nothing is blamed"
