"""``parity doctor``: what a requirements file fails to say about the environment.

A requirements file captures an intention; the snapshot of the environment that
produced a benchmark is the reality. :func:`doctor` lists every place where the two can
part: lines pip cannot read, versions left open, variant builds (``+cu118``, ``+cpu``)
with no index that serves them, nightlies that will vanish, URLs that can change under
the same name, pins the environment contradicts, installed packages nobody wrote down
(ranked by :mod:`parity.env.risk`), conflicting pins across includes and, when asked,
pins the configured index no longer serves.

Severity rule: **error** means pip will refuse the file or install something other than
what the snapshot holds; **warning** means it installs today but may install something
else tomorrow; **info** is worth knowing. Codes are stable (``README``, section
"Requirements doctor and lock").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from parity._text import printable
from parity.env._collect import redact_url
from parity.env.requirements import (
    Location,
    RequirementLine,
    RequirementsFile,
    expand_env_vars,
    marker_environment,
    parse_requirements,
)

SEVERITIES = ("error", "warning", "info")

#: code -> (severity, title). The README table is generated from the same words.
CODES: dict[str, tuple[str, str]] = {
    "PD001": ("error", "line pip cannot parse"),
    "PD002": ("warning", "remote include not followed"),
    "PD010": ("warning", "requirement without a version"),
    "PD011": ("warning", "range-only requirement"),
    "PD012": ("warning", "installed package the file does not mention"),
    "PD020": ("error", "local-version pin with no index or find-links that serves it"),
    "PD030": ("error", "nightly / dev-release pin"),
    "PD031": ("warning", "pre-release pin or range"),
    "PD032": ("error", "package named like a nightly build"),
    "PD033": ("warning", "--pre lets pip pick pre-releases everywhere"),
    "PD040": ("warning", "VCS requirement without a commit hash"),
    "PD041": ("warning", "URL requirement without a file hash"),
    "PD042": ("warning", "local path requirement"),
    "PD043": ("info", "editable requirement"),
    "PD044": ("error", "hash-checking mode, requirement pip will refuse"),
    "PD050": ("error", "declared version disagrees with the snapshot"),
    "PD051": ("warning", "pin without the local label the snapshot has"),
    "PD052": ("warning", "declared package missing from the snapshot"),
    "PD060": ("error", "conflicting pins for one package"),
    "PD061": ("warning", "package listed more than once"),
    "PD070": ("error", "pin the configured index does not serve"),
    "PD071": ("error", "pin the configured index serves only as yanked"),
    "PD072": ("warning", "could not check the index"),
}

# pip freeze leaves these out too: they are the installer, not the application.
_TOOLING = frozenset({"pip", "setuptools", "wheel", "distribute"})
_NIGHTLY_NAME = re.compile(r"nightly")


@dataclass(frozen=True)
class Finding:
    """One problem: where, how bad, a stable code, what is wrong and how to fix it."""

    code: str
    severity: str
    location: Location
    message: str
    fix: str
    package: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.location.file,
            "line": self.location.line,
            "where": str(self.location),
            "package": self.package,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass
class DoctorReport:
    """Findings sorted by file, line, severity; ``ok`` is False when any is an error."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    snapshot_used: bool = False
    index_checked: bool = False

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "parity.doctor/1",
            "path": str(self.path),
            "files": [str(p) for p in self.files],
            "ok": self.ok,
            "counts": self.counts(),
            "snapshot_used": self.snapshot_used,
            "index_checked": self.index_checked,
            "findings": [f.to_json() for f in self.findings],
        }


def _finding(
    code: str,
    loc: Location,
    message: str,
    fix: str,
    package: Optional[str] = None,
    severity: Optional[str] = None,
) -> Finding:
    """A finding whose text is safe to print and to share: credentials in the file's URLs
    masked, control characters shown as ``\\xNN``."""
    return Finding(code, severity or CODES[code][0], loc, printable(redact_url(message)), printable(redact_url(fix)), package)


def _cut(text: str, limit: int = 300) -> str:
    """A line quoted in a message, cut in the middle when very long (a 100 kB line)."""
    return text if len(text) <= limit else text[: limit // 2] + " … " + text[-limit // 2:]


# --- the index probe --------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """What the index said about one pin: ``status`` served/missing/yanked/unknown."""

    status: str
    detail: str = ""


class IndexProbe:
    """Asks the configured package index whether it serves exact pins."""

    def probe(self, requirement: str, options: Sequence[str]) -> ProbeResult:
        """``requirement`` is ``name==version``; ``options`` are pip index options."""
        raise NotImplementedError

    def probe_many(
        self, requirements: Sequence[str], options: Sequence[str]
    ) -> dict[str, ProbeResult]:
        """Every pin's answer. The first is asked alone: an unreachable index answers once."""
        if not requirements:
            return {}
        first = self.probe(requirements[0], options)
        if first.status == "unknown":
            return dict.fromkeys(requirements, first)
        return {requirements[0]: first, **{r: self.probe(r, options) for r in requirements[1:]}}


_NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Max retries exceeded|ConnectionError|ConnectTimeout|ReadTimeout|timed out"
    r"|Temporary failure in name resolution|Name or service not known|Could not fetch URL"
    r"|SSLError|ProxyError|connection error|Network is unreachable",
    re.IGNORECASE,
)
_NETWORK_DETAIL = re.compile(
    r"Failed to establish a new connection: [^'\"]*|Temporary failure in name resolution"
    r"|Name or service not known|Read timed out|Network is unreachable|SSLError\([^)]*\)"
)
_FROM_VERSIONS = re.compile(r"\(from versions: ([^)]*)\)")
_YANKED = re.compile(
    r"yanked version: '(?P<name>[^']+)' candidate \(version (?P<version>\S+) at [^\n]*"
    r"(?:\nReason for being yanked: (?P<reason>[^\n]*))?"
)
_NO_MATCH = re.compile(r"No matching distribution found for (?P<req>\S+)")


class PipIndexProbe(IndexProbe):
    """Runs ``pip install --dry-run --no-deps`` on the pins: pip reads the user's own index
    configuration (pip.conf, ``PIP_*`` variables), so no host is ever named here.

    All pins go to one pip run (pip starts in about a second; one run per pin made a
    75-line lock take minutes). pip stops at the first pin it cannot find: that pin is
    recorded as missing and the run repeats without it.
    """

    def __init__(self, python: str = sys.executable, timeout: float = 300.0) -> None:
        self.python = python
        self.timeout = timeout

    def command(self, requirements_file: str, options: Sequence[str], target: str) -> list[str]:
        return [
            self.python, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
            "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "15",
            "--target", target, *options, "-r", requirements_file,
        ]  # fmt: skip

    def probe(self, requirement: str, options: Sequence[str]) -> ProbeResult:
        return self.probe_many([requirement], options)[requirement]

    def probe_many(
        self, requirements: Sequence[str], options: Sequence[str]
    ) -> dict[str, ProbeResult]:
        results: dict[str, ProbeResult] = {}
        batch, later = _one_pin_per_name(requirements)
        while batch:
            returncode, output = self._run(batch, options)
            failing = _failing_pin(output, batch) if returncode not in (0, None) else None
            if failing is None or _NETWORK_ERRORS.search(output):
                verdicts = _batch_verdicts(returncode, output, batch)
                results.update(verdicts)
                break
            results[failing] = interpret_pip_output(returncode or 1, output)
            batch = [r for r in batch if r != failing]
        for requirement in later:
            results[requirement] = self.probe(requirement, options)
        return results

    def _run(self, pins: Sequence[str], options: Sequence[str]) -> tuple[Optional[int], str]:
        with tempfile.TemporaryDirectory(prefix="parity-probe-") as tmp:
            pins_file = Path(tmp) / "pins.txt"
            pins_file.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
            cmd = self.command(str(pins_file), options, str(Path(tmp) / "target"))
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                return None, f"pip did not answer within {self.timeout:.0f} s"
            except OSError as exc:
                return None, f"cannot run pip ({exc.strerror})"
        return proc.returncode, proc.stdout + proc.stderr


def _one_pin_per_name(requirements: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split pins so one pip run never holds two pins of a package (pip refuses that)."""
    seen: set[str] = set()
    batch: list[str] = []
    later: list[str] = []
    for requirement in dict.fromkeys(requirements):
        name = canonicalize_name(requirement.split("==", 1)[0])
        (later if name in seen else batch).append(requirement)
        seen.add(name)
    return batch, later


def _failing_pin(output: str, pins: Sequence[str]) -> Optional[str]:
    match = _NO_MATCH.search(output)
    if match is None:
        return None
    wanted = canonicalize_name(match.group("req").split("==", 1)[0])
    return next((p for p in pins if canonicalize_name(p.split("==", 1)[0]) == wanted), None)


def _batch_verdicts(
    returncode: Optional[int], output: str, pins: Sequence[str]
) -> dict[str, ProbeResult]:
    if returncode is None:
        return dict.fromkeys(pins, ProbeResult("unknown", output))
    if returncode != 0:
        verdict = interpret_pip_output(returncode, output)
        unknown = verdict if verdict.status == "unknown" else ProbeResult("unknown", verdict.detail)
        return dict.fromkeys(pins, unknown)
    yanked = {
        canonicalize_name(m.group("name")): (m.group("reason") or "no reason given").strip()
        for m in _YANKED.finditer(output)
    }
    out = {}
    for pin in pins:
        reason = yanked.get(canonicalize_name(pin.split("==", 1)[0]))
        out[pin] = ProbeResult("yanked", reason) if reason is not None else ProbeResult("served")
    return out


def interpret_pip_output(returncode: int, output: str) -> ProbeResult:
    """Classify what ``pip install --dry-run`` said about one pin."""
    if returncode == 0:
        match = _YANKED.search(output)
        if match:
            return ProbeResult("yanked", (match.group("reason") or "no reason given").strip())
        return ProbeResult("served")
    if "No module named pip" in output:
        return ProbeResult("unknown", "pip is not installed in this interpreter")
    if _NETWORK_ERRORS.search(output):
        detail = _NETWORK_DETAIL.search(output)
        return ProbeResult(
            "unknown", detail.group(0) if detail else _last_line(output, _NETWORK_ERRORS)
        )
    versions = _FROM_VERSIONS.search(output)
    if versions is not None or "No matching distribution found" in output:
        listed = versions.group(1).strip() if versions else ""
        return ProbeResult("missing", f"available: {listed}" if listed else "no version available")
    return ProbeResult("unknown", _last_line(output, None))


def _last_line(output: str, pattern: Optional[re.Pattern[str]]) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if pattern is not None:
        lines = [ln for ln in lines if pattern.search(ln)] or lines
    return lines[-1][:300] if lines else "pip failed without a message"


# --- the doctor -------------------------------------------------------------------------


def doctor(
    path: Union[str, os.PathLike[str]],
    snapshot: Union[Mapping[str, Any], str, os.PathLike[str], None] = None,
    check_index: bool = False,
    *,
    index_probe: Optional[IndexProbe] = None,
) -> DoctorReport:
    """Lint a requirements file, against a snapshot when one is given.

    ``snapshot``: a snapshot dict, or a spec :func:`parity.env.load_snapshot` accepts
    (file, record directory, ``"current"``). ``check_index`` asks pip whether the
    configured index still serves each exact pin (``index_probe`` replaces pip).
    Raises :class:`~parity.errors.RequirementsError` when the file cannot be read.
    """
    reqs = parse_requirements(path)
    snap = _load_snapshot(snapshot)
    report = DoctorReport(Path(path), files=list(reqs.files), snapshot_used=snap is not None)
    findings: list[Finding] = []
    findings += _syntax_findings(reqs)
    findings += _line_findings(reqs, snap)
    findings += _duplicate_findings(reqs)
    if snap is not None:
        findings += _snapshot_findings(reqs, snap)
        findings += _unmentioned_findings(reqs, snap)
    if check_index:
        report.index_checked = True
        index_findings, served = check_pins_against_index(reqs, index_probe or PipIndexProbe())
        findings = [_served_by_config(f, served) for f in findings] + index_findings
    report.findings = sorted(findings, key=_sort_key(reqs))
    return report


def _served_by_config(finding: Finding, served: set[str]) -> Finding:
    """A +label pin the file names no index for, but the user's pip configuration serves:
    it installs here, so a warning, not an error (another machine's configuration may differ)."""
    if finding.code != "PD020" or not any(
        s.split("==", 1)[0] == finding.package and finding.message.startswith(s) for s in served
    ):
        return finding
    return Finding(finding.code, "warning", finding.location,
                   finding.message + "; your pip configuration serves it (checked with --check-index), another machine's may not",
                   finding.fix, finding.package)  # fmt: skip


def _load_snapshot(
    snapshot: Union[Mapping[str, Any], str, os.PathLike[str], None],
) -> Optional[Mapping[str, Any]]:
    if snapshot is None or isinstance(snapshot, Mapping):
        return snapshot
    from parity.env import load_snapshot  # the snapshot package may import more than we need

    loaded: Mapping[str, Any] = load_snapshot(os.fspath(snapshot))
    return loaded


def _sort_key(reqs: RequirementsFile) -> Any:
    order = {str(p): i for i, p in enumerate(reqs.files)}

    def key(f: Finding) -> tuple[int, int, int, str]:
        line = f.location.line if f.location.line is not None else 10**9
        return (order.get(f.location.file, len(order)), line, SEVERITIES.index(f.severity), f.code)

    return key


def _syntax_findings(reqs: RequirementsFile) -> list[Finding]:
    out = [
        _finding("PD001", p.location, p.message, p.fix) if p.fix else
        _finding("PD001", p.location, f"pip cannot read {_cut(p.text)!r}: {p.message}",
                 "fix the line (pip's syntax: name[extras] specifier ; marker, or one option per line)")
        for p in reqs.problems
    ]  # fmt: skip
    for inc in reqs.includes:
        if inc.remote:
            out.append(_finding("PD002", inc.location, f"include {inc.target} is a URL: parity does not download it, so its lines are not checked",
                                "vendor the included file next to this one and include it by path"))  # fmt: skip
    for opt in reqs.options:
        if opt.option == "--pre":
            out.append(_finding("PD033", opt.location, "--pre lets pip choose a pre-release for every requirement in the file",
                                "remove --pre and pin the one pre-release you need with =="))  # fmt: skip
    return out


def _line_findings(reqs: RequirementsFile, snap: Optional[Mapping[str, Any]]) -> list[Finding]:
    hash_mode = bool(reqs.option_values("--require-hashes")) or any(
        r.hashes for r in reqs.requirements
    )
    has_index_source = _has_index_source(reqs)
    pinned = _pinned_names(reqs)
    out: list[Finding] = []
    for req in reqs.requirements + reqs.constraints:
        pinned_elsewhere = req.name is not None and req.pin is None and req.name in pinned
        out += _version_findings(req, snap, pinned_elsewhere, has_index_source)
        out += _variant_findings(req, has_index_source, snap)
        out += _source_findings(req)
        if hash_mode and not req.constraint:
            out += _hash_mode_findings(req)
    return out


def _installed(snap: Optional[Mapping[str, Any]], name: Optional[str]) -> Optional[str]:
    if snap is None or name is None:
        return None
    entry = (snap.get("packages") or {}).get(name)
    version = entry.get("version") if isinstance(entry, Mapping) else None
    return str(version) if version else None


def _pin_fix(
    req: RequirementLine, snap: Optional[Mapping[str, Any]], has_index_source: bool
) -> str:
    installed = _installed(snap, req.name)
    if installed and "+" in installed and not has_index_source:
        label = installed.split("+", 1)[1]
        return f"pin it to what the snapshot holds: {req.name}=={installed}, and add the --extra-index-url or --find-links line that serves +{label} builds"
    if installed:
        return f"pin it to what the snapshot holds: {req.name}=={installed}"
    if snap is not None:
        return f"pin the version you tested with ==; the snapshot has no {req.name}"
    return "pin the version you tested with == (pass --snapshot FILE to get the exact pin)"


def _pinned_names(reqs: RequirementsFile) -> set[str]:
    """Packages some line (a ``-c`` constraint, usually) pins exactly through the index: a
    line without a version is fine when another one pins it. One pass, not one per line."""
    return {r.name for r in reqs.requirements + reqs.constraints
            if r.name is not None and r.pin is not None and r.kind == "index"}


def _version_findings(
    req: RequirementLine,
    snap: Optional[Mapping[str, Any]],
    pinned_elsewhere: bool = False,
    has_index_source: bool = False,
) -> list[Finding]:
    """Nightly names, missing or loose versions (unless pinned on another line), pre-releases."""
    if req.kind != "index" or req.name is None:
        return []
    out: list[Finding] = []
    name = req.name
    if _NIGHTLY_NAME.search(name):
        out.append(_finding("PD032", req.location, f"{name} is named like a nightly build: nightly packages are replaced daily and deleted",
                            "depend on the released package and pin the release you tested", name))  # fmt: skip
    pin = req.pin
    if pin is None:
        if not str(req.specifier):
            code, what = (
                "PD010",
                f"{name} has no version: pip installs whatever is newest on the day",
            )
        else:
            code, what = "PD011", f"{name}{req.specifier} allows a range: two installs can differ"
        if not pinned_elsewhere and (not req.constraint or code == "PD011"):
            out.append(
                _finding(code, req.location, what, _pin_fix(req, snap, has_index_source), name)
            )
        if req.specifier.prereleases:
            out.append(_finding("PD031", req.location, f"{name}{req.specifier} admits pre-releases",
                                "pin a final release with ==", name))  # fmt: skip
        return out
    try:
        version = Version(pin)
    except InvalidVersion:
        return out  # "===" arbitrary strings: nothing more packaging can tell
    if version.is_devrelease:
        out.append(_finding("PD030", req.location, f"{name}=={pin} is a dev/nightly build: indexes delete these, so the file stops installing",
                            "pin a released version (or vendor the wheel and pin it by file hash)", name))  # fmt: skip
    elif version.is_prerelease:
        out.append(_finding("PD031", req.location, f"{name}=={pin} is a pre-release",
                            "pin a final release with == once one exists", name))  # fmt: skip
    return out


def _has_index_source(reqs: RequirementsFile) -> bool:
    """Whether the file names any index or find-links that could serve a local build."""
    sources = (
        reqs.option_values("--index-url")
        + reqs.option_values("--extra-index-url")
        + reqs.option_values("--find-links")
    )
    return bool(sources)


def _variant_findings(
    req: RequirementLine, has_index_source: bool, snap: Optional[Mapping[str, Any]] = None
) -> list[Finding]:
    pin = req.pin
    if req.kind != "index" or pin is None or "+" not in pin or has_index_source:
        return []
    label = pin.split("+", 1)[1]
    return [
        _finding("PD020", req.location,
                 f"{req.name}=={pin} is a +{label} build: the default index never serves local versions and the file names no index or find-links",
                 variant_index_fix(label, snap), req.name)
    ]  # fmt: skip


def variant_index_fix(label: str, snap: Optional[Mapping[str, Any]]) -> str:
    """The fix for a +label pin with no index line: the exact option lines of the
    snapshot's pip/uv configuration (``package_sources``) when it recorded any that can
    serve local builds, else what to add by hand (parity does not guess hosts)."""
    from parity.env.lock import source_options

    options = source_options(snap) if snap is not None else None
    serving = [o for o in options or [] if o.can_serve_variants]
    if not serving:
        where = ("; the snapshot's pip/uv configuration names none either" if options is not None else "")
        return f"add the --extra-index-url (or --find-links) line of the index that served the +{label} build{where}; parity does not guess hosts"  # fmt: skip
    lines = "; ".join(f"{o.line} (from {o.source})" for o in serving)
    fix = f"add the line(s) the snapshot's pip/uv configuration used: {lines}"
    if any(o.masked for o in serving):
        fix += "; credentials were masked (***) in the snapshot: supply them through PIP_EXTRA_INDEX_URL or a netrc, not in the file"
    return fix


def _source_findings(req: RequirementLine) -> list[Finding]:
    what = req.name or req.url or req.text
    if req.editable:
        return [_finding("PD043", req.location, f"{what} is installed editable from {req.url}: the environment follows the working tree",
                         "fine for development; for a deployment build a wheel and pin it", req.name)]  # fmt: skip
    if req.kind == "vcs" and not req.is_immutable:
        ref = req.vcs_ref
        said = f"@{ref} is a branch or tag" if ref else "has no @ref (the default branch)"
        return [_finding("PD040", req.location, f"{what}: {req.url} {said}, it can move",
                         "pin the full commit hash: ...@<40-hex commit>", req.name)]  # fmt: skip
    if req.kind == "url" and not req.is_immutable:
        return [_finding("PD041", req.location, f"{what}: {req.url} has no file hash; the file behind the URL can change",
                         "append #sha256=<hash> to the URL or add --hash=sha256:<hash> (pip hash FILE)", req.name)]  # fmt: skip
    if req.kind == "path":
        return [_finding("PD042", req.location, f"{req.url} is a local path: it exists only on this machine",
                         "build a wheel, publish it to your index and pin it by version", req.name)]  # fmt: skip
    return []


def _hash_mode_findings(req: RequirementLine) -> list[Finding]:
    what = req.name or req.url or req.text
    if req.editable or req.kind == "vcs":
        why = "pip cannot hash an editable or VCS requirement"
    elif not req.hashes and not req.url_hash:
        why = "it has no --hash"
    elif req.kind == "index" and req.pin is None:
        why = "it is not pinned with =="
    else:
        return []
    return [_finding("PD044", req.location, f"hash-checking mode is on (some line has --hash) and pip will refuse {what}: {why}",
                     "give every requirement an == pin and --hash lines (parity lock SNAPSHOT --hashes writes them)", req.name)]  # fmt: skip


# --- duplicates and conflicts -------------------------------------------------------------


def _duplicate_findings(reqs: RequirementsFile) -> list[Finding]:
    groups: dict[str, list[RequirementLine]] = {}
    for req in reqs.requirements + reqs.constraints:
        if req.name is not None:
            groups.setdefault(req.name, []).append(req)
    out: list[Finding] = []
    for name, lines in groups.items():
        for same_env in _comparable_groups(lines):
            out += _group_findings(name, same_env)
    return out


def _comparable_groups(lines: list[RequirementLine]) -> list[list[RequirementLine]]:
    """Lines that can apply together: same marker, or no marker (which applies everywhere)."""
    markers = {str(r.marker) for r in lines if r.marker is not None}
    unmarked = [r for r in lines if r.marker is None]
    if not markers:
        return [unmarked]
    return [unmarked + [r for r in lines if str(r.marker) == m] for m in sorted(markers)]


def _group_findings(name: str, lines: list[RequirementLine]) -> list[Finding]:
    if len(lines) < 2:
        return []
    pins = list(dict.fromkeys(r.pin for r in lines if r.kind == "index" and r.pin is not None))
    distinct = list({str(r.specifier): r for r in lines if r.kind == "index"}.values())
    if pins and not any(_satisfies_all(pin, distinct) for pin in pins):
        last = lines[-1]
        others = ", ".join(f"{r.text} ({r.location})" for r in lines[:-1])
        return [_finding("PD060", last.location, f"{last.text} conflicts with {others}: no version satisfies them all, pip will refuse",
                         f"keep one pin for {name} (in a constraints file if several files need it)", name)]  # fmt: skip
    requirements = [r for r in lines if not r.constraint]
    if len(requirements) < 2:
        return []
    first = requirements[0]
    return [_finding("PD061", r.location, f"{name} is already required at {first.location} ({first.text})",
                     "keep one line per package; put shared pins in a constraints file (-c)", name)
            for r in requirements[1:]]  # fmt: skip


def _satisfies_all(pin: str, lines: Iterable[RequirementLine]) -> bool:
    try:
        return all(r.kind != "index" or r.specifier.contains(pin, prereleases=True) for r in lines)
    except InvalidVersion:
        return True


# --- against the snapshot -----------------------------------------------------------------


def _snapshot_findings(reqs: RequirementsFile, snap: Mapping[str, Any]) -> list[Finding]:
    env = marker_environment(snap)
    out: list[Finding] = []
    for req in reqs.requirements + reqs.constraints:
        if req.name is None or not req.applies_to(env):
            continue
        installed = _installed(snap, req.name)
        if installed is None:
            if not req.constraint:
                out.append(_finding("PD052", req.location, f"the file declares {req.name} but the snapshot has no {req.name} installed",
                                    f"install it where the snapshot was taken, or drop {req.name} from the file", req.name))  # fmt: skip
            continue
        out += _disagreement(req, installed, snap)
    return out


def _disagreement(req: RequirementLine, installed: str, snap: Mapping[str, Any]) -> list[Finding]:
    name = req.name or ""
    if req.kind == "vcs":
        commit = (
            (snap["packages"][name].get("vcs") or {})
            if isinstance(snap["packages"][name], Mapping)
            else {}
        ).get("commit_id")
        ref = req.vcs_ref
        if req.is_immutable and commit and ref and commit.lower() != ref.lower():
            return [_finding("PD050", req.location, f"the file pins {name} at commit {ref} but the snapshot holds commit {commit}",
                             f"pin @{commit}", name)]  # fmt: skip
        return []
    if req.kind not in ("index", "url") or not str(req.specifier):  # a wheel URL names its version
        return []
    try:
        allowed = req.specifier.contains(installed, prereleases=True)
    except InvalidVersion:
        return []
    if not allowed:
        return [_finding("PD050", req.location, f"the file says {name}{req.specifier} but the snapshot holds {name} {installed}",
                         f"{name}=={installed} (or rebuild the environment from the file and benchmark again)", name)]  # fmt: skip
    pin = req.pin
    if pin and "+" not in pin and "+" in installed:
        label = installed.split("+", 1)[1]
        return [_finding("PD051", req.location, f"{name}=={pin} drops the +{label} label the snapshot holds ({installed}): another build of the same version may be installed",
                         f"{name}=={installed}, with the index or find-links line that serves +{label} builds", name)]  # fmt: skip
    return []


def _unmentioned_findings(reqs: RequirementsFile, snap: Mapping[str, Any]) -> list[Finding]:
    from parity.env.risk import level_rank, package_risk

    mentioned = {r.name for r in reqs.requirements + reqs.constraints if r.name}
    packages = snap.get("packages") or {}
    missing = []
    for name, entry in packages.items():
        key = canonicalize_name(name)
        if (
            key in mentioned
            or key in _TOOLING
            or (isinstance(entry, Mapping) and entry.get("editable"))
        ):
            continue
        version = entry.get("version") if isinstance(entry, Mapping) else None
        missing.append((level_rank(package_risk(key).level), key, str(version or "")))
    missing.sort()
    whole_file = Location(str(reqs.path))
    out: list[Finding] = []
    low = [(n, v) for rank, n, v in missing if rank >= 2]
    for rank, name, version in missing:
        if rank >= 2:
            continue
        risk = package_risk(name)
        out.append(_finding("PD012", whole_file,
                            f"{name} {version} is installed but not in the file ({risk.level} risk: {risk.reason}); it floats with whatever requires it",
                            f"pin it: {name}=={version} (in the file or a -c constraints file)", name,
                            severity="warning" if risk.level == "high" else "info"))  # fmt: skip
    if low:
        listed = ", ".join(f"{n}=={v}" for n, v in low)
        out.append(_finding("PD012", whole_file, f"{len(low)} more installed packages are not in the file (low risk): {listed}",
                            "pin them in a -c constraints file (parity lock SNAPSHOT writes every pin)", severity="info"))  # fmt: skip
    return out


# --- against the index ----------------------------------------------------------------------


def index_options(reqs: RequirementsFile) -> list[str]:
    """The file's index options as pip arguments, ``${VAR}`` expanded and relative
    find-links resolved against the file, as pip does when it reads the file itself."""
    args: list[str] = []
    for opt in reqs.options:
        value = expand_env_vars(opt.value) if opt.value else opt.value
        if opt.option == "--find-links" and value:
            local = Path(opt.location.file).parent / value
            args += ["--find-links", str(local) if local.exists() else value]
        elif opt.option in ("--index-url", "--extra-index-url", "--trusted-host") and value:
            args += [opt.option, value]
        elif opt.option in ("--no-index", "--pre"):
            args.append(opt.option)
    return args


def check_pins_against_index(
    reqs: RequirementsFile, probe: IndexProbe
) -> tuple[list[Finding], set[str]]:
    """Ask the index about every exact pin that applies to this interpreter.

    Returns the findings and the pins (``name==version``) the index serves. When no pin
    could be checked (index unreachable), one finding says so instead of one per pin.
    """
    from packaging.markers import default_environment

    env = {k: str(v) for k, v in default_environment().items()}
    pins = [r for r in reqs.requirements if r.kind == "index" and r.pin and r.applies_to(env)]
    if not pins:
        return [], set()
    answers = probe.probe_many([f"{r.name}=={r.pin}" for r in pins], index_options(reqs))
    results = [answers.get(f"{r.name}=={r.pin}", ProbeResult("unknown", "no answer")) for r in pins]
    if all(r.status == "unknown" for r in results):
        return [_finding("PD072", Location(str(reqs.path)), f"could not check {len(pins)} pin(s) against the configured index: {results[0].detail}",
                         "check the network and your pip index configuration (pip config list), then run again")], set()  # fmt: skip
    out: list[Finding] = []
    for req, result in zip(pins, results):
        out += _probe_findings(req, result)
    served = {
        f"{req.name}=={req.pin}" for req, result in zip(pins, results) if result.status == "served"
    }
    return out, served


def _probe_findings(req: RequirementLine, result: ProbeResult) -> list[Finding]:
    spec = f"{req.name}=={req.pin}"
    if result.status == "missing":
        return [_finding("PD070", req.location, f"the configured index does not serve {spec} for this Python and platform ({result.detail})",
                         "pin a version the index serves, or add the index/find-links that serves this one", req.name)]  # fmt: skip
    if result.status == "yanked":
        return [_finding("PD071", req.location, f"the configured index serves {spec} only as yanked ({result.detail})",
                         "move to a release that is not yanked", req.name)]  # fmt: skip
    if result.status == "unknown":
        return [_finding("PD072", req.location, f"could not check {spec} against the configured index: {result.detail}",
                         "run again when the index answers", req.name)]  # fmt: skip
    return []
