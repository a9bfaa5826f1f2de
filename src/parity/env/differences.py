"""Compare two environment snapshots, ranked by how likely each difference is to matter.

``diff(a, b, requirements=None)`` walks both snapshots section by section: packages by
canonical name (a version change whose public part is equal is a *variant* change,
``2.13.0+cu118`` -> ``2.13.0+cpu``), CPU ISA flags one by one, environment variables one
by one, and every other section (python, platform, cpu, torch, gpu, runtime and any
section a newer writer adds) as a tree of dotted paths. Volatile and machine-local facts
(``meta``, interpreter paths, library file paths) never count. Each difference gets its
risk, reason and stages from :mod:`parity.env.risk`; with a requirements file, each
package difference also says what the file declared and whether that allowed the drift.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from parity.env.risk import level_rank, risk_for

#: Sections that never count: volatile facts, or facts another section already covers.
IGNORED_SECTIONS = frozenset({"schema", "meta", "nvidia_wheels", "packages", "env_vars", "package_sources"})
#: Dotted paths (per section) that are machine-local or duplicate another item.
IGNORED_PATHS = frozenset({
    "python.executable", "python.prefix", "python.base_prefix",
    "torch.version", "torch.location", "torch.variant",
    "gpu.reason", "gpu.source",
    "runtime.numpy", "runtime.torch.version", "runtime.torch.build.commit_sha",
    "runtime.torch.build.torch_version",
})
#: Leaf keys that are file paths wherever they appear.
IGNORED_KEYS = frozenset({"filepath", "location", "editable_location"})
#: Dicts compared as one value (several fields that describe one thing).
ATOMIC_PATHS = frozenset({"platform.distro"})
#: Per-tensor placement maps ({name: {"dtype", "device"}}) reported as one summary item,
#: not one item per parameter.
PLACEMENT_PATHS = frozenset({"runtime.model.parameters", "runtime.model.buffers"})

#: Order of categories inside one risk level: what the code is, then what runs it.
CATEGORY_ORDER = ("package", "torch", "runtime", "gpu", "cpu", "platform", "python", "env_var", "package_source")
#: The settings of ``package_sources.<tool>`` compared by value (where each came from,
#: a file path or a variable name, is machine-local and does not count).
SOURCE_SETTINGS = ("index_url", "extra_index_urls", "find_links", "no_index", "trusted_hosts")

SnapshotLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Difference:
    """One difference between environment A and B.

    ``change``: added (only in B), removed (only in A), changed, or variant (same public
    version, other local label). ``declared`` / ``declared_allows`` are set for packages
    when a requirements file was given: the specifier it declared (None: not mentioned)
    and whether the declaration admits the versions seen (True: the drift was allowed,
    e.g. a loose range or an unpinned transitive; False: one side violates it; None:
    the file cannot say, e.g. a URL requirement).
    """

    category: str
    name: str
    a: Any
    b: Any
    change: str
    risk: str
    reason: str
    stages: tuple[str, ...] = ()
    declared: Optional[str] = None
    declared_allows: Optional[bool] = None
    declared_status: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "category": self.category, "name": self.name, "a": self.a, "b": self.b,
            "change": self.change, "risk": self.risk, "reason": self.reason,
            "stages": list(self.stages),
        }
        if self.declared_status is not None:
            out.update(declared=self.declared, declared_allows=self.declared_allows,
                       declared_status=self.declared_status)
        return out


@dataclass
class EnvDiff:
    """Every difference, sorted by risk (high first) then name; ``identical`` when none."""

    items: list[Difference] = field(default_factory=list)
    a_source: Optional[str] = None
    b_source: Optional[str] = None
    requirements: Optional[str] = None
    #: What could not be compared (e.g. runtime state collected on one side only).
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.items

    def counts(self) -> dict[str, int]:
        """Number of differences per risk level."""
        out = {"high": 0, "medium": 0, "low": 0}
        for item in self.items:
            out[item.risk] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "counts": self.counts(),
            "a": self.a_source,
            "b": self.b_source,
            "requirements": self.requirements,
            "notes": list(self.notes),
            "items": [item.to_json() for item in self.items],
        }


def diff(a: SnapshotLike, b: SnapshotLike, requirements: Union[str, os.PathLike[str], None] = None) -> EnvDiff:
    """Differences from environment ``a`` to ``b``.

    ``a`` and ``b`` are snapshot dicts or anything :func:`parity.env.load_snapshot`
    accepts (a snapshot file, a record directory, ``"current"``). ``requirements`` is a
    requirements file path: package differences then carry what it declared.
    Raises :class:`~parity.errors.SnapshotError` / ``RequirementsError`` on bad input.
    """
    snap_a, source_a = _as_snapshot(a, "A")
    snap_b, source_b = _as_snapshot(b, "B")
    check_package_sources(snap_a, source_a or "environment A")
    check_package_sources(snap_b, source_b or "environment B")
    items = diff_packages(snap_a["packages"], snap_b["packages"])
    items += diff_env_vars(snap_a.get("env_vars") or {}, snap_b.get("env_vars") or {})
    items += diff_sections(rekey_threadpool(snap_a), rekey_threadpool(snap_b))
    items += diff_package_sources(snap_a.get("package_sources"), snap_b.get("package_sources"))
    items = drop_implied(items)
    notes = comparability_notes(snap_a, snap_b)
    req_path = None
    if requirements is not None:
        from parity.env.requirements import marker_environment, parse_requirements

        req_path = str(requirements)
        reqs = parse_requirements(requirements)
        items = annotate_declared(items, reqs, marker_environment(snap_b))
        notes += [f"{p.location}: line not understood, ignored here (run `parity doctor`): {p.message}"
                  for p in reqs.problems]
    items.sort(key=sort_key)
    return EnvDiff(items, source_a, source_b, req_path, notes)


def rekey_threadpool(snap: Mapping[str, Any]) -> Mapping[str, Any]:
    """A snapshot whose ``runtime.threadpool`` keys are in today's form.

    Older snapshots keyed a library ``"<user_api>:<internal_api>:<prefix>"`` (numpy's and
    scipy's OpenBLAS collided); the owner is put back from each entry's ``filepath`` and
    the snapshot's ``meta.sys_path``, so an old record still compares library by library
    with a new one."""
    runtime = snap.get("runtime")
    if not isinstance(runtime, Mapping):
        return snap
    pool = runtime.get("threadpool")
    if not isinstance(pool, Mapping) or not any(_old_threadpool_key(k) for k in pool):
        return snap
    from parity.env.runtime import threadpool_entries

    meta, python = snap.get("meta"), snap.get("python")
    meta = meta if isinstance(meta, Mapping) else {}
    python = python if isinstance(python, Mapping) else {}
    listed = meta.get("sys_path")
    sys_path = [p for p in listed if isinstance(p, str)] if isinstance(listed, list) else []
    prefixes = [p for p in (python.get("prefix"), python.get("base_prefix")) if isinstance(p, str)]
    libs = [dict(lib, prefix=key.split(":")[2]) for key, lib in pool.items()
            if _old_threadpool_key(key) and isinstance(lib, Mapping)]
    kept = {k: v for k, v in pool.items() if not _old_threadpool_key(k)}
    return {**snap, "runtime": {**runtime, "threadpool": {**kept, **threadpool_entries(libs, sys_path, prefixes)}}}


def _old_threadpool_key(key: Any) -> bool:
    return isinstance(key, str) and key.count(":") == 2 and "/" not in key


def drop_implied(items: list[Difference]) -> list[Difference]:
    """Leave out what another item already says: another torch release always has
    another git commit, so ``torch git_version`` only counts when the version is equal."""
    if any(d.category == "package" and d.name == "torch" and d.change == "changed" for d in items):
        return [d for d in items if (d.category, d.name) != ("torch", "git_version")]
    return items


def sort_key(item: Difference) -> tuple[int, int, str]:
    """Risk first (high to low), then category (:data:`CATEGORY_ORDER`), then name."""
    order = CATEGORY_ORDER.index(item.category) if item.category in CATEGORY_ORDER else len(CATEGORY_ORDER)
    return level_rank(item.risk), order, item.name


def _as_snapshot(spec: SnapshotLike, side: str) -> tuple[Mapping[str, Any], Optional[str]]:
    from parity.env.snapshots import check_snapshot, load_snapshot

    if isinstance(spec, Mapping):
        return check_snapshot(dict(spec), f"environment {side}"), None
    return load_snapshot(spec), str(spec)


def _difference(category: str, name: str, a: Any, b: Any, change: str) -> Difference:
    risk = risk_for(category, name)
    return Difference(category, name, a, b, change, risk.level, risk.reason, risk.stages)


# --- packages ---------------------------------------------------------------------------


def diff_packages(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    """Added, removed, changed and variant-changed distributions (keys: canonical names)."""
    out = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            out.append(_difference("package", name, package_label(a[name]), None, "removed"))
        elif name not in a:
            out.append(_difference("package", name, None, package_label(b[name]), "added"))
        else:
            label_a, label_b = package_label(a[name]), package_label(b[name])
            if label_a != label_b:
                out.append(_package_change(name, a[name], b[name], label_a, label_b))
    return out


def package_label(dist: Mapping[str, Any]) -> str:
    """What identifies the installed code: version, VCS commit, editable or not.

    Installer, REQUESTED and paths are left out: they do not change what runs.
    """
    label = str(dist["version"])
    vcs = dist.get("vcs") or {}
    if vcs.get("commit_id"):
        label += f" @ {vcs.get('vcs') or 'vcs'} {str(vcs['commit_id'])[:12]}"
    if dist.get("editable"):
        label += " (editable)"
    return label


def _package_change(name: str, a: Mapping[str, Any], b: Mapping[str, Any], label_a: str, label_b: str) -> Difference:
    item = _difference("package", name, label_a, label_b, "changed")
    public_a = str(a["version"]).partition("+")[0]
    public_b = str(b["version"]).partition("+")[0]
    local_a, local_b = _local(a), _local(b)
    if local_a == local_b:
        return item
    # Another build (cu118 vs cpu): at least medium whatever the package.
    risk = item.risk if level_rank(item.risk) <= level_rank("medium") else "medium"
    variant = f"+{local_a or 'none'} -> +{local_b or 'none'}"
    if public_a == public_b:
        reason, change = f"wheel variant changed ({variant}): {item.reason}", "variant"
    else:
        reason, change = f"new release and wheel variant ({variant}): {item.reason}", "changed"
    return Difference("package", name, label_a, label_b, change, risk, reason, item.stages or ("model",))


def _local(dist: Mapping[str, Any]) -> Optional[str]:
    return str(dist["version"]).partition("+")[2] or None


# --- environment variables ------------------------------------------------------------------


def diff_env_vars(a: Mapping[str, str], b: Mapping[str, str]) -> list[Difference]:
    out = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            out.append(_difference("env_var", name, a[name], None, "removed"))
        elif name not in a:
            out.append(_difference("env_var", name, None, b[name], "added"))
        elif a[name] != b[name]:
            out.append(_difference("env_var", name, a[name], b[name], "changed"))
    return out


# --- package sources (pip/uv index configuration) -------------------------------------------


def diff_package_sources(a: Any, b: Any) -> list[Difference]:
    """One item per pip/uv setting whose value differs (``pip.extra_index_urls``...).

    A snapshot written before ``package_sources`` existed has none: nothing is compared
    then (:func:`comparability_notes` says so)."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return []
    out = []
    for tool in sorted(set(a) | set(b)):
        tool_a, tool_b = a.get(tool, {}), b.get(tool, {})
        for setting in SOURCE_SETTINGS:
            value_a, value_b = source_values(tool_a.get(setting)), source_values(tool_b.get(setting))
            if value_a != value_b:
                change = "added" if value_a in (None, []) else "removed" if value_b in (None, []) else "changed"
                out.append(_difference("package_source", f"{tool}.{setting}", value_a, value_b, change))
    return out


def check_package_sources(snap: Mapping[str, Any], source: str) -> None:
    """Refuse a ``package_sources`` section this parity cannot read (hand-edited or
    damaged); an absent one is fine (older snapshots)."""
    sections = snap.get("package_sources")
    problem = None if sections is None else _package_sources_problem(sections)
    if problem:
        from parity.errors import SnapshotError

        raise SnapshotError(f"{source}: package_sources {problem}",
                            fix="take the snapshot again with parity snapshot -o FILE")  # fmt: skip


def _package_sources_problem(sections: Any) -> Optional[str]:
    if not isinstance(sections, Mapping):
        return "is not an object"
    for tool, settings in sections.items():
        if not isinstance(settings, Mapping):
            return f"{tool!r} is not an object"
        for setting in SOURCE_SETTINGS:
            value = settings.get(setting)
            entries = value if isinstance(value, list) else [] if value is None else [value]
            if any(not isinstance(e, Mapping) or "value" not in e for e in entries):
                return f"{tool}.{setting} holds an entry that is not {{\"value\", \"source\"}}"
    return None


def source_values(setting: Any) -> Any:
    """The values of one recorded setting without where they came from: a list of values
    for list settings, the value (or None) for the others."""
    if isinstance(setting, list):
        return [entry.get("value") for entry in setting if isinstance(entry, Mapping)]
    if isinstance(setting, Mapping):
        return setting.get("value")
    return None


# --- every other section, as a tree -----------------------------------------------------------


def diff_sections(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    """python, platform, cpu, torch, gpu, runtime, and unknown future sections."""
    out: list[Difference] = []
    for section in sorted((set(a) | set(b)) - IGNORED_SECTIONS):
        va, vb = a.get(section), b.get(section)
        if va == vb:
            continue
        if section == "torch" and (va is None or vb is None):
            continue  # torch installed on one side only: the package item says it
        if section == "runtime" and (va is None or vb is None):
            continue  # not a difference of the environments: see comparability_notes
        if section == "cpu":
            out += diff_cpu_flags((va or {}).get("flags") or [], (vb or {}).get("flags") or [])
        if section == "gpu" and _gpu_status(va) != _gpu_status(vb):
            out.append(_difference("gpu", "status", gpu_summary(va), gpu_summary(vb), "changed"))
            continue  # one item says it all: the driver/device fields exist on one side only
        _walk(section, section, va, vb, out)
    return out


def _gpu_status(gpu: Any) -> Any:
    return gpu.get("status") if isinstance(gpu, Mapping) else None


def gpu_summary(gpu: Any) -> str:
    """``absent`` or ``present: NVIDIA H100 (driver 550.54.15, CUDA 12.4)``."""
    if not isinstance(gpu, Mapping):
        return "unknown"
    names = ", ".join(str(d.get("name")) for d in gpu.get("devices") or [] if isinstance(d, Mapping))
    details = [f"driver {gpu['driver_version']}" if gpu.get("driver_version") else "",
               f"CUDA {gpu['cuda_driver_version']}" if gpu.get("cuda_driver_version") else ""]
    details_text = ", ".join(d for d in details if d)
    text = str(gpu.get("status"))
    if names or details_text:
        text += ": " + " ".join(p for p in (names, f"({details_text})" if details_text else "") if p)
    return text


def comparability_notes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What the diff could not compare, said plainly (not counted as differences)."""
    notes = []
    if (a.get("runtime") is None) != (b.get("runtime") is None):
        side = "A" if a.get("runtime") is not None else "B"
        notes.append(
            f"runtime state (BLAS, threads, precision flags) was collected for {side} only: "
            "snapshot both sides with --runtime to compare it"
        )
    if (a.get("package_sources") is None) != (b.get("package_sources") is None):
        side = "A" if a.get("package_sources") is not None else "B"
        notes.append(
            f"pip/uv index configuration (package_sources) was recorded for {side} only: "
            "the other snapshot predates it; take it again to compare where packages come from"
        )
    return notes


def diff_cpu_flags(a: list[str], b: list[str]) -> list[Difference]:
    """One item per ISA flag present on one side only."""
    out = []
    for flag in sorted(set(a) ^ set(b)):
        change = "removed" if flag in a else "added"
        out.append(_difference("cpu", f"flag.{flag}", "present" if flag in a else None, "present" if flag in b else None, change))
    return out


def _walk(section: str, path: str, a: Any, b: Any, out: list[Difference]) -> None:
    """Append one Difference per differing leaf under ``path`` (dotted, section first)."""
    if a == b or path in IGNORED_PATHS or path == "cpu.flags":
        return
    if path in PLACEMENT_PATHS and isinstance(a, dict) and isinstance(b, dict):
        _add(section, path, placement_summary(a), placement_summary(b), "changed", out)
        return
    if isinstance(a, dict) and isinstance(b, dict) and path not in ATOMIC_PATHS:
        for key in sorted(set(a) | set(b), key=str):
            if key in IGNORED_KEYS:
                continue
            sub = f"{path}.{key}"
            if key not in a:
                _add(section, sub, None, b[key], "added", out)
            elif key not in b:
                _add(section, sub, a[key], None, "removed", out)
            else:
                _walk(section, sub, a[key], b[key], out)
        return
    if _dict_list(a) and _dict_list(b):
        _walk(section, path, dict(enumerate(a)), dict(enumerate(b)), out)
        return
    _add(section, path, a, b, "changed", out)


def _add(section: str, path: str, a: Any, b: Any, change: str, out: list[Difference]) -> None:
    if path in IGNORED_PATHS:
        return
    name = path[len(section) + 1:] or section
    out.append(_difference(section, name, _plain(a), _plain(b), change))


def placement_summary(tensors: Mapping[str, Any]) -> dict[str, int]:
    """``{"float32 on cpu": 105}``: how many tensors have each dtype/device."""
    counts: dict[str, int] = {}
    for info in tensors.values():
        info = info if isinstance(info, Mapping) else {}
        key = f"{info.get('dtype')} on {info.get('device')}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _dict_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _plain(value: Any) -> Any:
    """Drop path-like keys from a dict value reported whole (an added BLAS library)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in IGNORED_KEYS}
    return value


# --- requirements: the third column ------------------------------------------------------------


def annotate_declared(items: list[Difference], reqs: Any, environment: Mapping[str, str]) -> list[Difference]:
    """Add what ``reqs`` (a parsed RequirementsFile) declares to each package difference."""
    out = []
    for item in items:
        if item.category != "package":
            out.append(item)
            continue
        decl = reqs.declared(item.name, environment)
        versions = [_version_of(v) for v in (item.a, item.b) if v is not None]
        out.append(_with_declaration(item, decl, versions))
    return out


def _with_declaration(item: Difference, decl: Any, versions: list[str]) -> Difference:
    from dataclasses import replace

    if decl.status == "absent":
        return replace(item, declared=None, declared_allows=True, declared_status="absent")
    if decl.status == "url":
        return replace(item, declared="(URL/path requirement)", declared_allows=None, declared_status="url")
    allowed = [decl.allows(v) for v in versions]
    allows = None if any(x is None for x in allowed) else all(allowed)
    return replace(item, declared=decl.specifier or "(any version)", declared_allows=allows, declared_status=decl.status)


def _version_of(label: Any) -> str:
    return str(label).split(" ", 1)[0]
