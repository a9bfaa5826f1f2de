"""``parity lock``: an exact, installable requirements file from a snapshot.

``pip freeze`` keeps ``torch==2.1.0+cu118`` but forgets that only another index serves
it. The lock says what the snapshot knows and admits what it does not:

- every distribution pinned with ``==``, local label (``+cpu``) included;
- a distribution installed from a URL or VCS (PEP 610 ``direct_url.json``) locked to
  that URL with its commit or file hash;
- the index options the snapshot recorded (``package_sources``: pip's and uv's
  configuration where it was taken) at the top, each with the file or variable it came
  from; a URL whose credentials were masked becomes a comment saying how to supply them;
- a ``+label`` build installed from an index: unless those options include an extra
  index or find-links that could serve it, the snapshot cannot know which index served
  it, so a comment next to the pin says so (never an invented host);
- editable installs and local directories reported as not lockable;
- the installer tooling (pip, setuptools, wheel) pinned like everything else, at the
  version that ran: a fresh virtual environment brings its own bundled releases, and a
  lock must rebuild what the snapshot saw (``pip`` upgrades or downgrades itself from
  its line);
- a header naming the Python and platform the lock is valid for;
- with ``hashes=True``, ``--hash`` lines for the files pip downloads for the pins
  through the user's own pip configuration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from parity._io import atomic_write_text, sha256_file
from parity.env._collect import MASK, redact
from parity.env.differences import check_package_sources
from parity.errors import ParityError, SnapshotError

SnapshotSpec = Union[Mapping[str, Any], str, "os.PathLike[str]"]


#: Installer tooling ``pip freeze`` leaves out. The lock pins them (with a note): a fresh
#: virtual environment's bundled releases are not the ones that ran.
TOOLING = frozenset({"pip", "setuptools", "wheel", "distribute"})
_TOOLING_NOTE = ("installer tooling, pinned to the release that ran (a new virtual environment "
                 "bundles its own); pip installs this line like any other")


class LockError(ParityError):
    """A lock could not be written (hashes could not be fetched, snapshot unusable)."""


@dataclass(frozen=True)
class LockEntry:
    """How one distribution of the snapshot appears in the lock.

    ``status``: ``"pinned"`` (``name==version``; pip, setuptools and wheel too, with a
    note), ``"url"`` / ``"vcs"`` (a direct reference) or ``"not_lockable"`` (editable,
    local directory, VCS without commit).
    ``requirement`` is the line written (None when not lockable); ``notes`` are the
    comments written above it.
    """

    name: str
    version: str
    status: str
    requirement: Optional[str]
    notes: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "requirement": self.requirement,
            "notes": list(self.notes),
            "hashes": list(self.hashes),
        }


@dataclass(frozen=True)
class SourceOption:
    """One index option recorded in the snapshot, as the lock writes it.

    ``option``: ``--index-url``, ``--extra-index-url``, ``--find-links``, ``--no-index``
    or ``--trusted-host``; ``value`` None for ``--no-index``; ``source``: the variable or
    ``file [section]`` it came from; ``tool``: pip or uv. ``masked``: the snapshot hid
    credentials in the URL (``***``), so the lock writes a comment, never the line.
    """

    option: str
    value: Optional[str]
    source: str
    tool: str

    @property
    def masked(self) -> bool:
        return MASK in (self.value or "")

    @property
    def line(self) -> str:
        return self.option if self.value is None else f"{self.option} {self.value}"

    @property
    def can_serve_variants(self) -> bool:
        """An extra index or find-links: where a +label build can come from (the main
        index is usually the default one or its mirror, which never has local versions)."""
        return self.option in ("--extra-index-url", "--find-links")

    def to_json(self) -> dict[str, Any]:
        return {"option": self.option, "value": self.value, "source": self.source,
                "tool": self.tool, "masked": self.masked}  # fmt: skip


@dataclass
class LockResult:
    """The lock text and, per distribution, what went into it. ``sources``: the index
    options taken from the snapshot's ``package_sources`` (None: the snapshot predates
    that section)."""

    text: str
    entries: list[LockEntry]
    valid_for: str
    hashes: bool = False
    warnings: list[str] = field(default_factory=list)
    written_to: Optional[Path] = None
    sources: Optional[list[SourceOption]] = None

    @property
    def locked(self) -> list[LockEntry]:
        """Entries written as requirements (pins, URLs, VCS), not as comments."""
        return [e for e in self.entries if e.status in ("pinned", "url", "vcs")]

    @property
    def not_lockable(self) -> list[LockEntry]:
        return [e for e in self.entries if e.status == "not_lockable"]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "parity.lock/1",
            "valid_for": self.valid_for,
            "hashes": self.hashes,
            "written_to": str(self.written_to) if self.written_to else None,
            "entries": [e.to_json() for e in self.entries],
            "not_lockable": [e.name for e in self.not_lockable],
            "tooling": [e.name for e in self.entries if canonicalize_name(e.name) in TOOLING],
            "warnings": list(self.warnings),
            "sources": None if self.sources is None else [s.to_json() for s in self.sources],
            "text": self.text,
        }


class HashSource:
    """Finds the sha256 of the files an index serves for exact pins."""

    def hashes(self, pins: Sequence[str]) -> dict[str, list[str]]:
        """``pins`` are ``name==version``; returns canonical name -> ``["sha256:..."]``."""
        raise NotImplementedError


class PipDownloadHashes(HashSource):
    """``pip download --no-deps`` of every pin into a temporary folder, then sha256 of each
    file. pip uses the user's index configuration (pip.conf, ``PIP_*``), so the files are
    the ones that configuration serves to this interpreter and platform."""

    def __init__(self, python: str = sys.executable, timeout: float = 600.0) -> None:
        self.python = python
        self.timeout = timeout

    def hashes(self, pins: Sequence[str]) -> dict[str, list[str]]:
        with tempfile.TemporaryDirectory(prefix="parity-lock-") as tmp:
            reqs = Path(tmp) / "pins.txt"
            reqs.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
            dest = Path(tmp) / "files"
            self._download(reqs, dest)
            return _hash_folder(dest)

    def _download(self, reqs: Path, dest: Path) -> None:
        cmd = [self.python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-input", "-d", str(dest), "-r", str(reqs)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise LockError(f"pip download of the pins did not finish within {self.timeout:.0f} s",
                            fix="check the network and your index, or lock without --hashes") from None  # fmt: skip
        except OSError as exc:
            raise LockError(
                f"cannot run pip to fetch hashes ({exc.strerror})",
                fix="install pip, or lock without --hashes",
            ) from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            last = next(
                (ln for ln in reversed(lines) if ln.startswith("ERROR")),
                lines[-1] if lines else "no message",
            )
            raise LockError(f"pip download failed while fetching hashes: {last}",
                            fix="make your pip configuration (pip config list) reach an index that serves these pins, or lock without --hashes")  # fmt: skip


def _hash_folder(folder: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        name = _dist_name_of_file(path.name)
        if name is not None:
            out.setdefault(name, []).append(f"sha256:{sha256_file(path)}")
    return out


def _dist_name_of_file(filename: str) -> Optional[str]:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None


# --- the lock -------------------------------------------------------------------------------


def lock(
    snapshot: SnapshotSpec,
    hashes: bool = False,
    *,
    out: Union[str, os.PathLike[str], None] = None,
    hash_source: Optional[HashSource] = None,
) -> LockResult:
    """Build the lock for a snapshot (dict, or a spec :func:`parity.env.load_snapshot` reads).

    With ``out`` the text is written there atomically. ``hashes`` asks ``hash_source``
    (default: pip download through the user's configuration) for ``--hash`` lines.
    """
    snap, source = _load(snapshot)
    check_package_sources(snap, source)
    options = source_options(snap)
    entries = [_with_variant_note(_entry(name, info), options) for name, info in sorted(_packages(snap).items())]
    warnings = [
        f"{e.name} {e.version}: not lockable ({e.notes[0]})"
        for e in entries
        if e.status == "not_lockable"
    ]
    if hashes:
        entries, more = _with_hashes(entries, hash_source or PipDownloadHashes(), snap)
        warnings += more
    valid_for = describe_target(snap)
    text = render_lock(entries, snap, source, valid_for, hashes, options)
    warnings += [f"{o.option} from {o.source}: credentials were masked in the snapshot; supply them before installing"
                 for o in options or [] if o.masked]  # fmt: skip
    result = LockResult(text, entries, valid_for, hashes, warnings, sources=options)
    if out is not None:
        result.written_to = atomic_write_text(out, text)
    return result


def _load(snapshot: SnapshotSpec) -> tuple[Mapping[str, Any], str]:
    if isinstance(snapshot, Mapping):
        return snapshot, "a snapshot"
    from parity.env import load_snapshot

    spec = os.fspath(snapshot)
    snap: Mapping[str, Any] = load_snapshot(spec)
    return snap, spec


def _packages(snap: Mapping[str, Any]) -> Mapping[str, Any]:
    packages = snap.get("packages")
    if not isinstance(packages, Mapping):
        raise SnapshotError(
            "the snapshot has no 'packages' table",
            fix="take a new one with parity snapshot -o FILE",
        )
    return packages


# --- index options recorded in the snapshot ----------------------------------------------------

#: package_sources setting -> pip requirements-file option.
_OPTION_OF = (("index_url", "--index-url"), ("extra_index_urls", "--extra-index-url"),
              ("find_links", "--find-links"), ("no_index", "--no-index"), ("trusted_hosts", "--trusted-host"))  # fmt: skip
#: what a +label note says when the snapshot cannot tell where the build came from
_UNKNOWN_INDEX = "not on the default index and the snapshot does not record which index or find-links served it"


def source_options(snap: Mapping[str, Any]) -> Optional[list[SourceOption]]:
    """The index options of the snapshot's ``package_sources``: pip's first, then what uv
    adds (a second main index is dropped: a requirements file has one ``--index-url``).
    None when the snapshot has no ``package_sources`` (taken before it was recorded)."""
    sources = snap.get("package_sources")
    if not isinstance(sources, Mapping):
        return None
    out: list[SourceOption] = []
    for tool in ("pip", "uv"):
        settings = sources.get(tool)
        if isinstance(settings, Mapping):
            out += [o for o in _tool_options(tool, settings) if not _already(o, out)]
    return out


def _tool_options(tool: str, settings: Mapping[str, Any]) -> list[SourceOption]:
    out = []
    for key, option in _OPTION_OF:
        value = settings.get(key)
        for entry in value if isinstance(value, list) else [value]:
            if not isinstance(entry, Mapping) or entry.get("value") in (None, False, ""):
                continue
            text = None if option == "--no-index" else redact(str(entry["value"]))  # an older snapshot's too
            out.append(SourceOption(option, text, redact(str(entry.get("source") or "?")), tool))
    return out


def _already(option: SourceOption, chosen: Sequence[SourceOption]) -> bool:
    if option.option in ("--index-url", "--no-index"):
        return any(o.option == option.option for o in chosen)
    return any((o.option, o.value) == (option.option, option.value) for o in chosen)


def _with_variant_note(entry: LockEntry, options: Optional[Sequence[SourceOption]]) -> LockEntry:
    """Say where a +label pin can come from: the recorded extra index / find-links lines,
    or, when there are none, that the snapshot cannot know."""
    if entry.status != "pinned" or "+" not in entry.version:
        return entry
    label = entry.version.split("+", 1)[1]
    serving = [o for o in options or [] if o.can_serve_variants]
    if not serving:
        note = f"+{label} build: {_UNKNOWN_INDEX}; add that --extra-index-url or --find-links line above"
    elif all(o.masked for o in serving):
        note = (f"+{label} build: served by one of the recorded indexes above, whose credentials "
                "were masked in the snapshot: supply them before installing")  # fmt: skip
    else:
        note = (f"+{label} build: not on the default index; pip finds it through the "
                "--extra-index-url/--find-links lines above, recorded where the snapshot was taken")  # fmt: skip
    return LockEntry(entry.name, entry.version, entry.status, entry.requirement, (note, *entry.notes), entry.hashes)


def render_sources(options: Optional[Sequence[SourceOption]], variants: bool) -> list[str]:
    """The option lines at the top of the lock, each after a comment naming its origin.

    A masked URL becomes a comment telling the user to supply the credentials (through
    the variable pip reads for that option) instead of a line pip would fail on."""
    if options is None:
        if not variants:
            return []
        return ["# Builds with a +label (e.g. +cpu, +cu121) need the index or find-links that served them;",
                "# the snapshot does not record it: add it here or in your pip configuration.", ""]  # fmt: skip
    if not options:
        note = ["# The snapshot records no pip/uv index configuration: pip's default index served everything."]
        if variants:
            note.append("# Yet +label builds are pinned: add the --extra-index-url or --find-links line that served them.")
        return [*note, ""]
    lines = ["# Package sources recorded in the snapshot (pip/uv configuration where it was taken):"]
    for o in options:
        if o.masked:
            variable = "PIP_" + o.option.lstrip("-").upper().replace("-", "_")
            lines += [f"# {o.line}  (from {o.source}, {o.tool}): credentials were masked in the snapshot;",
                      f"#   supply them yourself, e.g. {variable}=<the URL with user and token>, or a netrc/keyring entry"]  # fmt: skip
        else:
            lines += [f"# from {o.source} ({o.tool})", o.line]
    return [*lines, ""]


def _entry(name: str, info: Any) -> LockEntry:
    if not isinstance(info, Mapping) or not info.get("version"):
        return LockEntry(name, "", "not_lockable", None, ("the snapshot records no version",))
    version = str(info["version"])
    direct = info.get("direct_url") if isinstance(info.get("direct_url"), Mapping) else None
    if info.get("editable"):
        where = info.get("editable_location") or (direct or {}).get("url") or "a working tree"
        return LockEntry(
            name,
            version,
            "not_lockable",
            None,
            (f"editable install from {where}; install it from its source (pip install -e PATH)",),
        )
    if direct is not None and direct.get("url"):
        return _direct_entry(name, version, direct)
    notes: tuple[str, ...] = ()  # a +label pin gets its note from _with_variant_note
    installer = str(info.get("installer") or "").strip().lower()
    if installer == "conda":
        notes += ("installed by conda: a pip index may not have this build (or this name)",)
    if canonicalize_name(name) in TOOLING:
        notes += (_TOOLING_NOTE,)
    return LockEntry(name, version, "pinned", f"{name}=={version}", notes)


def _direct_entry(name: str, version: str, direct: Mapping[str, Any]) -> LockEntry:
    url = redact(str(direct["url"]))  # masked again: the snapshot may predate today's masking
    if MASK in url:
        # Never an active line: pip would fail on it, and the user must supply the secret.
        return LockEntry(name, version, "not_lockable", None, (
            f"installed from {url}, whose credentials were masked in the snapshot; put the URL with its "
            "credentials back through a netrc, keyring or a PIP_* variable, then pin it here",))  # fmt: skip
    notes: list[str] = []
    subdir = direct.get("subdirectory")
    fragment = f"#subdirectory={subdir}" if subdir else ""
    vcs = direct.get("vcs_info")
    if isinstance(vcs, Mapping):
        commit = vcs.get("commit_id")
        if not commit:
            return LockEntry(
                name,
                version,
                "not_lockable",
                None,
                (f"VCS install from {url} with no recorded commit",),
            )
        scheme = str(vcs.get("vcs") or "git")
        prefix = "" if url.startswith(f"{scheme}+") else f"{scheme}+"
        return LockEntry(
            name, version, "vcs", f"{name} @ {prefix}{url}@{commit}{fragment}", tuple(notes)
        )
    if isinstance(direct.get("dir_info"), Mapping) or (
        url.startswith("file:") and not _is_archive(url)
    ):
        return LockEntry(
            name,
            version,
            "not_lockable",
            None,
            (f"installed from the local directory {url}; its content is not fixed by any version",),
        )
    if url.startswith("file:"):
        notes.append(
            "a file on the machine the snapshot was taken on: copy it or serve it from your index"
        )
    archive_hashes = _archive_hashes(direct.get("archive_info"))
    return LockEntry(
        name, version, "url", f"{name} @ {url}{fragment}", tuple(notes), archive_hashes
    )


def _is_archive(url: str) -> bool:
    return (
        url.lower()
        .split("#", 1)[0]
        .endswith((".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"))
    )


def _archive_hashes(archive: Any) -> tuple[str, ...]:
    """``archive_info.hashes`` ({"sha256": hex}) or the legacy ``hash`` ("sha256=hex")."""
    if not isinstance(archive, Mapping):
        return ()
    found = archive.get("hashes")
    if isinstance(found, Mapping) and found:
        return tuple(
            f"{algo}:{value}"
            for algo, value in sorted(found.items())
            if algo in ("sha256", "sha384", "sha512")
        )
    legacy = archive.get("hash")
    if isinstance(legacy, str) and "=" in legacy:
        algo, value = legacy.split("=", 1)
        return (f"{algo}:{value}",) if algo in ("sha256", "sha384", "sha512") else ()
    return ()


def _with_hashes(
    entries: list[LockEntry], source: HashSource, snap: Mapping[str, Any]
) -> tuple[list[LockEntry], list[str]]:
    pins = [e.requirement for e in entries if e.status == "pinned" and e.requirement]
    found = source.hashes(pins) if pins else {}
    warnings: list[str] = []
    here = _current_target()
    if here != _target_key(snap):
        warnings.append(
            f"hashes are of the files pip picked for this machine ({here[0]}, {here[1]}), not for the snapshot's"
        )
    out = []
    for e in entries:
        if e.status == "pinned":
            got = tuple(sorted(set(found.get(canonicalize_name(e.name), []))))
            if not got:
                raise LockError(
                    f"pip downloaded no file for {e.requirement}",
                    fix="check that your index serves it, or lock without --hashes",
                )
            e = LockEntry(e.name, e.version, e.status, e.requirement, e.notes, got)
        elif e.status == "vcs":
            warnings.append(
                f"{e.name}: pip cannot hash a VCS requirement; pip will refuse the lock in hash-checking mode"
            )
        elif e.status == "url" and not e.hashes:
            warnings.append(f"{e.name}: the snapshot records no hash for {e.requirement}")
        out.append(e)
    return out, warnings


def _target_key(snap: Mapping[str, Any]) -> tuple[str, str]:
    python = snap.get("python") or {}
    plat = snap.get("platform") or {}
    version = ".".join(str(python.get("version") or "").split(".")[:2])
    return (f"Python {version}", f"{plat.get('system')} {plat.get('machine')}")


def _current_target() -> tuple[str, str]:
    import platform

    return (
        f"Python {sys.version_info[0]}.{sys.version_info[1]}",
        f"{platform.system()} {os.uname().machine if hasattr(os, 'uname') else platform.machine()}",
    )


def describe_target(snap: Mapping[str, Any]) -> str:
    """One line naming the interpreter and platform a lock of ``snap`` is valid for."""
    python = snap.get("python") or {}
    plat = snap.get("platform") or {}
    parts = [f"{python.get('implementation') or 'Python'} {python.get('version') or '?'}",
             f"{plat.get('system') or '?'} {plat.get('machine') or '?'}"]  # fmt: skip
    if plat.get("glibc"):
        parts.append(f"glibc {plat['glibc']}")
    return ", ".join(parts)


def render_lock(
    entries: Sequence[LockEntry],
    snap: Mapping[str, Any],
    source: str,
    valid_for: str,
    hashes: bool,
    options: Optional[Sequence[SourceOption]] = None,
) -> str:
    """The requirements-file text: header comments, then one block per distribution."""
    from parity.env.requirements import marker_environment

    env = marker_environment(snap)
    created = (snap.get("meta") or {}).get("created") or "an unknown time"
    pinned = sum(1 for e in entries if e.status in ("pinned", "url", "vcs"))
    lines = [
        f"# Exact lock written by `parity lock` from {_one_line(source)} (snapshot taken {created}).",
        f"# Valid for {valid_for}:",
        f'#   python_version == "{env["python_version"]}" and sys_platform == "{env["sys_platform"]}" and platform_machine == "{env["platform_machine"]}"',
        f"# {pinned} of {len(entries)} distributions locked (installer tooling included); not lockable ones are comments.",
    ]
    if hashes:
        lines.append("# Hashes: install with pip install --require-hashes -r THIS_FILE")
    lines.append("")
    lines += render_sources(options, any("+" in e.version and e.status == "pinned" for e in entries))
    for e in entries:
        lines += _render_entry(e, hashes)
    return "\n".join(lines) + "\n"


def _render_entry(e: LockEntry, hash_mode: bool) -> list[str]:
    """Comments, then the requirement. Outside hash mode a URL's known hash goes in its
    ``#sha256=`` fragment: one ``--hash`` line would switch pip to hash-checking mode
    for the whole file."""
    if e.hashes and not hash_mode and e.requirement:
        algo, _, value = e.hashes[0].partition(":")
        joiner = "&" if "#" in e.requirement else "#"
        e = LockEntry(
            e.name, e.version, e.status, f"{e.requirement}{joiner}{algo}={value}", e.notes
        )
    out = (
        [f"# {e.name}: {_one_line(note)}" for note in e.notes[1:]]
        if e.status == "not_lockable"
        else [f"# {_one_line(n)}" for n in e.notes]
    )
    if e.status == "not_lockable" or not e.requirement:
        return [
            f"# not lockable: {e.name}=={e.version}: {_one_line(e.notes[0]) if e.notes else 'unknown source'}",
            *out,
        ]
    if not e.hashes:
        return [*out, e.requirement]
    return [
        *out,
        e.requirement + " \\",
        *[
            f"    --hash={h}" + (" \\" if i < len(e.hashes) - 1 else "")
            for i, h in enumerate(e.hashes)
        ],
    ]


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
