"""The pip requirements-file format, parsed the way pip reads it, every line kept.

:func:`parse_requirements` follows pip's own rules (``pip/_internal/req/req_file.py``):
a trailing backslash joins the next line (a comment line ends the join), ``#`` starts
a comment at the start of a line or after whitespace, the requirement part ends at the
first token starting with ``-``, ``-r``/``-c`` paths are relative to the including
file. Versions, specifiers and markers go through :mod:`packaging` only.

A line that pip could not read never raises: it becomes a :class:`ParseProblem` with
its file and line, and :mod:`parity.env.doctor` reports it as an error finding. What
does raise :class:`~parity.errors.RequirementsError` is a file that cannot be read at
all: missing, a directory, binary, not valid text, a missing include, an include cycle.

The question the environment diff asks, "what does the file declare for package X", is
:meth:`RequirementsFile.declared`.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import shlex
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion

from parity._text import one_line
from parity.errors import RequirementsError

#: Largest requirements file read (bytes): a bigger one is refused unread. Real files,
#: generated locks with thousands of hashes included, stay far below it.
MAX_FILE_BYTES = 5 << 20
#: Deepest chain of ``-r``/``-c`` includes followed; deeper lines get a problem, not a crash.
MAX_INCLUDE_DEPTH = 64
#: Deepest parentheses in a line (markers); deeper is a problem, not a RecursionError.
MAX_NESTING = 32
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^file:", re.IGNORECASE)
_VCS_SCHEMES = ("git+", "hg+", "svn+", "bzr+")
_ARCHIVE_SUFFIXES = (
    ".whl",
    ".zip",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar",
)
_IMMUTABLE_REF_RE = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_HASH_RE = re.compile(r"(sha256|sha384|sha512):([0-9a-fA-F]+)")
_HASH_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

#: Options pip accepts on a line of their own: spelling -> (canonical spelling, takes a value)
GLOBAL_OPTIONS: dict[str, tuple[str, bool]] = {
    "-r": ("--requirement", True),
    "--requirement": ("--requirement", True),
    "-c": ("--constraint", True),
    "--constraint": ("--constraint", True),
    "-e": ("--editable", True),
    "--editable": ("--editable", True),
    "-i": ("--index-url", True),
    "--index-url": ("--index-url", True),
    "--extra-index-url": ("--extra-index-url", True),
    "--no-index": ("--no-index", False),
    "-f": ("--find-links", True),
    "--find-links": ("--find-links", True),
    "--trusted-host": ("--trusted-host", True),
    "--pre": ("--pre", False),
    "--prefer-binary": ("--prefer-binary", False),
    "--require-hashes": ("--require-hashes", False),
    "--no-binary": ("--no-binary", True),
    "--only-binary": ("--only-binary", True),
    "--use-feature": ("--use-feature", True),
}
#: Options pip accepts after a requirement, on the same line.
PER_REQUIREMENT_OPTIONS: dict[str, tuple[str, bool]] = {
    "--hash": ("--hash", True),
    "--config-settings": ("--config-settings", True),
    "--global-option": ("--global-option", True),
}
#: Options that tell pip where packages come from (what a local-version pin needs).
INDEX_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "--no-index")


@dataclass(frozen=True)
class Location:
    """Where something was declared: a file and a 1-based line (None: the file as a whole)."""

    file: str
    line: Optional[int] = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line}


@dataclass(frozen=True)
class RequirementLine:
    """One requirement (or constraint) line.

    ``kind`` is ``"index"`` (a name and specifier pip resolves through an index),
    ``"url"`` (an archive URL), ``"vcs"`` (``git+...``) or ``"path"`` (a local file or
    directory). ``name`` is the PEP 503 canonical name, or None when the line does not
    say it (a bare path or URL without ``#egg=``). ``hashes`` are ``"algo:hex"``.
    """

    location: Location
    text: str
    name: Optional[str]
    kind: str
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    extras: tuple[str, ...] = ()
    marker: Optional[Marker] = None
    url: Optional[str] = None
    editable: bool = False
    constraint: bool = False
    hashes: tuple[str, ...] = ()

    @property
    def pin(self) -> Optional[str]:
        """The exact version the line pins (``==X`` without wildcard, or ``===X``), else None."""
        return exact_pin(self.specifier)

    @property
    def vcs_ref(self) -> Optional[str]:
        """The ``@ref`` of a VCS URL (branch, tag or commit), None when there is none."""
        if self.kind != "vcs" or not self.url:
            return None
        path = urlsplit(self.url.split("#", 1)[0]).path
        return unquote(path.rsplit("@", 1)[1]) if "@" in path else None

    @property
    def url_hash(self) -> Optional[str]:
        """An ``#sha256=...`` style fragment of an archive URL, as ``"algo:hex"``."""
        if not self.url or "#" not in self.url:
            return None
        for part in self.url.split("#", 1)[1].split("&"):
            algo, _, value = part.partition("=")
            if algo in _HASH_HEX_LEN and value:
                return f"{algo}:{value}"
        return None

    @property
    def is_immutable(self) -> bool:
        """True when a URL/VCS line names exactly one artifact (commit hash or file hash)."""
        if self.kind == "vcs":
            ref = self.vcs_ref
            return ref is not None and _IMMUTABLE_REF_RE.fullmatch(ref) is not None
        if self.kind in ("url", "path"):
            return bool(self.hashes or self.url_hash)
        return True

    def applies_to(self, environment: Optional[Mapping[str, str]]) -> bool:
        """Whether the line's marker holds in ``environment`` (None: assume it does)."""
        if self.marker is None or environment is None:
            return True
        try:
            return bool(self.marker.evaluate(dict(environment)))
        except Exception:  # an undefined marker variable: packaging raises its own types
            return True

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location.to_json(),
            "text": self.text,
            "name": self.name,
            "kind": self.kind,
            "specifier": str(self.specifier),
            "pin": self.pin,
            "extras": list(self.extras),
            "marker": str(self.marker) if self.marker is not None else None,
            "url": self.url,
            "editable": self.editable,
            "constraint": self.constraint,
            "hashes": list(self.hashes),
        }


@dataclass(frozen=True)
class OptionLine:
    """A global option line (``--index-url URL``, ``--pre``...); ``value`` None for flags."""

    location: Location
    option: str
    value: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location.to_json(), "option": self.option, "value": self.value}


@dataclass(frozen=True)
class Include:
    """A ``-r``/``-c`` line and the file it pulled in (``remote``: an URL not followed)."""

    location: Location
    target: str
    constraint: bool
    remote: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location.to_json(),
            "target": self.target,
            "constraint": self.constraint,
            "remote": self.remote,
        }


@dataclass(frozen=True)
class ParseProblem:
    """A line pip could not read; the doctor reports it as an error finding."""

    location: Location
    text: str
    message: str
    #: How to put it right, when it is not a syntax error (None: fix the syntax).
    fix: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location.to_json(), "text": self.text, "message": self.message}


@dataclass(frozen=True)
class Declaration:
    """What a requirements file declares for one package.

    ``status``: ``"exact"`` (pinned with ``==``/``===``), ``"range"`` (a specifier that
    allows more than one version), ``"any"`` (named without a specifier), ``"url"``
    (a URL, VCS or path requirement) or ``"absent"`` (not mentioned).
    """

    name: str
    status: str
    specifier: str = ""
    pin: Optional[str] = None
    locations: tuple[Location, ...] = ()

    def allows(self, version: str) -> Optional[bool]:
        """Whether ``version`` satisfies the declaration; None when the file cannot say."""
        if self.status in ("absent", "url"):
            return None
        try:
            return SpecifierSet(self.specifier).contains(version, prereleases=True)
        except InvalidVersion:
            return False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "specifier": self.specifier,
            "pin": self.pin,
            "locations": [loc.to_json() for loc in self.locations],
        }


@dataclass
class RequirementsFile:
    """A parsed requirements file and everything it includes, in reading order."""

    path: Path
    requirements: list[RequirementLine] = field(default_factory=list)
    constraints: list[RequirementLine] = field(default_factory=list)
    options: list[OptionLine] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def lines_for(self, name: str, *, constraints: bool = True) -> list[RequirementLine]:
        """Every requirement (and constraint) line naming ``name`` (any spelling)."""
        key = canonicalize_name(name)
        pool = self.requirements + (self.constraints if constraints else [])
        return [r for r in pool if r.name == key]

    def option_values(self, option: str) -> list[str]:
        """Values of a global option across all files (``""`` for a flag that is set)."""
        return [o.value or "" for o in self.options if o.option == option]

    def declared(self, name: str, environment: Optional[Mapping[str, str]] = None) -> Declaration:
        """What the file (with its includes and constraints) declares for ``name``.

        ``environment`` is a PEP 508 marker environment: lines whose marker does not
        hold there are ignored; None keeps every line.
        """
        key = canonicalize_name(name)
        lines = [r for r in self.lines_for(key) if r.applies_to(environment)]
        if not lines:
            return Declaration(key, "absent")
        locations = tuple(r.location for r in lines)
        if any(r.kind != "index" for r in lines):
            return Declaration(key, "url", "", None, locations)
        combined = SpecifierSet()
        for r in lines:
            combined &= r.specifier
        pin = exact_pin(combined)
        status = "exact" if pin else ("range" if str(combined) else "any")
        return Declaration(key, status, str(combined), pin, locations)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "files": [str(p) for p in self.files],
            "requirements": [r.to_json() for r in self.requirements],
            "constraints": [r.to_json() for r in self.constraints],
            "options": [o.to_json() for o in self.options],
            "includes": [i.to_json() for i in self.includes],
            "problems": [p.to_json() for p in self.problems],
        }


def exact_pin(specifier: SpecifierSet) -> Optional[str]:
    """The single version a specifier set pins (``==1.2``, ``===1.2``), else None."""
    for spec in specifier:
        if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
            return spec.version
    return None


def marker_environment(snap: Mapping[str, Any]) -> dict[str, str]:
    """PEP 508 marker variables of the machine a snapshot describes, so that ``;
    sys_platform == "win32"`` lines are judged for the environment that was built, not
    for this one. Every variable is given (``platform_version`` is not recorded: "")
    so that none falls back to this interpreter's value."""
    python = snap.get("python") or {}
    plat = snap.get("platform") or {}
    version = str(python.get("version") or "")
    system = str(plat.get("system") or "")
    impl = str(python.get("implementation") or "")
    return {
        "python_version": ".".join(version.split(".")[:2]),
        "python_full_version": version,
        "implementation_name": impl.lower(),
        "implementation_version": version,
        "platform_python_implementation": impl,
        "platform_system": system,
        "platform_machine": str(plat.get("machine") or ""),
        "platform_release": str(plat.get("release") or ""),
        "platform_version": "",
        "sys_platform": {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(system, system.lower()),
        "os_name": "nt" if system == "Windows" else "posix",
    }


def parse_requirements(path: str | os.PathLike[str]) -> RequirementsFile:
    """Parse a requirements file and its ``-r``/``-c`` includes.

    Raises :class:`RequirementsError` (naming the file and line) when a file cannot be
    read: missing, a directory, binary, undecodable, a missing include or an include
    cycle. Every other defect is a :class:`ParseProblem` in the result.
    """
    path = Path(path)
    result = RequirementsFile(path=path)
    _Reader(result).read(path, constraint=False, stack=(), included_from=None)
    return result


class _Reader:
    """Walks a file and its includes into one :class:`RequirementsFile`."""

    def __init__(self, result: RequirementsFile) -> None:
        self.result = result
        self.seen: set[tuple[Path, bool]] = set()

    def read(
        self,
        path: Path,
        constraint: bool,
        stack: tuple[Path, ...],
        included_from: Optional[Location],
    ) -> None:
        resolved = _resolve(path, included_from)
        if resolved in stack:
            chain = " -> ".join(_shown(p) for p in (*stack, resolved))
            raise RequirementsError(
                f"{included_from}: include cycle: {chain}",
                fix=f"remove the -r/-c line at {included_from} or the one it loops back through",
            )
        if (resolved, constraint) in self.seen:
            return  # a diamond include: pip would read it twice, declaring nothing new
        self.seen.add((resolved, constraint))
        self.result.files.append(path)
        text = read_text(path, included_from)
        for line_no, line in logical_lines(text):
            self._line(path, line_no, line, constraint, (*stack, resolved))

    def _line(
        self, path: Path, line_no: int, line: str, constraint: bool, stack: tuple[Path, ...]
    ) -> None:
        loc = Location(str(path), line_no)
        parsed = parse_line(line, loc, constraint)
        if isinstance(parsed, ParseProblem):
            self.result.problems.append(parsed)
        elif isinstance(parsed, RequirementLine):
            (self.result.constraints if parsed.constraint else self.result.requirements).append(
                parsed
            )
        elif isinstance(parsed, OptionLine):
            self._option(path, parsed, stack)

    def _option(self, path: Path, opt: OptionLine, stack: tuple[Path, ...]) -> None:
        if opt.option not in ("--requirement", "--constraint"):
            self.result.options.append(opt)
            return
        constraint = opt.option == "--constraint"
        target = opt.value or ""
        if re.match(r"^(https?|ftp)://", target, re.IGNORECASE):
            self.result.includes.append(Include(opt.location, target, constraint, remote=True))
            return
        child = _local_path(target, path.parent, opt.location)
        self.result.includes.append(Include(opt.location, str(child), constraint))
        if len(stack) >= MAX_INCLUDE_DEPTH:
            self.result.problems.append(ParseProblem(
                opt.location, f"{opt.option} {target}",
                f"includes nest more than {MAX_INCLUDE_DEPTH} files deep here: {_shown(child)} and what it "
                "includes were not read, so not checked", "flatten the chain of -r/-c files (is it generated, or runaway?)"))  # fmt: skip
            return
        self.read(child, constraint, stack, included_from=opt.location)


def _local_path(target: str, base: Path, where: Location) -> Path:
    if target.lower().startswith("file:"):
        target = unquote(urlsplit(target).path)
    try:
        child = Path(target).expanduser()
    except RuntimeError:  # ~name of a user this machine does not have
        user = target[1:].split("/", 1)[0]
        raise RequirementsError(f"{where}: {_shown(target)}: no user {_shown(user)!r} on this machine to expand ~ for",
                                fix=f"fix the path in the -r/-c line at {where}") from None  # fmt: skip
    return child if child.is_absolute() else base / child


def _resolve(path: Path, included_from: Optional[Location]) -> Path:
    """``path.resolve()``; a symlink loop (or a name the OS refuses) is a RequirementsError."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        where = f"{included_from}: " if included_from else ""
        why = "a symlink loop" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP \
            else (exc.strerror or str(exc))
        raise RequirementsError(f"{where}{_shown(path)}: cannot be read ({why})",
                                fix="point the path at a real file") from None  # fmt: skip


_ENV_VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)\}")


def expand_env_vars(value: str) -> str:
    """pip's ``${NAME}`` expansion (upper case, digits, underscore; unset names stay).

    The parser keeps lines as written so that tokens never reach a report; callers that
    hand a value to pip expand it here, as pip itself would have.
    """
    return _ENV_VAR.sub(lambda m: os.environ.get(m.group("name"), m.group(0)), value)


def read_text(path: Path, included_from: Optional[Location] = None) -> str:
    """Read a requirements file as text, refusing binary and undecodable files, anything
    that is not a regular file (a FIFO would block, ``/dev/zero`` never ends) and files
    over :data:`MAX_FILE_BYTES`.

    A BOM selects UTF-8/16/32; otherwise the file must be UTF-8 (pip would fall back
    to the locale's encoding, which makes the same file mean different things on two
    machines).
    """
    where = f"{included_from}: " if included_from else ""
    raw = _read_regular_file(path, where, included_from)
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return _decode(raw, encoding, path, where)
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise RequirementsError(
            f"{where}{_shown(path)}:{line}: binary file (NUL byte), not a requirements file",
            fix="pass a text requirements file",
        )
    return _decode(raw, "utf-8", path, where)


def _shown(path: object) -> str:
    """A path or name from a file, safe and short enough for a one-line message."""
    text = one_line(path)
    return text if len(text) <= 200 else text[:100] + "…" + text[-99:]


def _check_regular(info: os.stat_result, shown: str, fix_missing: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise RequirementsError(f"{shown}: is a directory, not a requirements file", fix=fix_missing)
    if not stat.S_ISREG(info.st_mode):
        raise RequirementsError(f"{shown}: is not a regular file (a FIFO, device or socket): refused",
                                fix="save the requirements to a file and pass that")  # fmt: skip
    if info.st_size > MAX_FILE_BYTES:
        raise RequirementsError(f"{shown}: is {info.st_size} bytes, over the {MAX_FILE_BYTES >> 20} MiB "
                                "parity reads from a requirements file", fix="split it, or check it is the file you meant")  # fmt: skip


def _read_regular_file(path: Path, where: str, included_from: Optional[Location]) -> bytes:
    """The bytes of ``path``, opened without blocking and checked on the open descriptor
    (no window between a check and the read for a swapped-in FIFO)."""
    shown = _shown(path)
    fix_missing = "check the path" + (f" in the -r/-c line at {included_from}" if included_from else "")
    if str(path) == os.devnull:
        return b""  # an empty include, as pip reads it
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise RequirementsError(f"{where}{shown}: no such file", fix=fix_missing) from None
    except IsADirectoryError:
        raise RequirementsError(f"{where}{shown}: is a directory, not a requirements file", fix=fix_missing) from None
    except OSError as exc:
        fix = fix_missing if exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP) else "check its permissions"
        raise RequirementsError(f"{where}{shown}: cannot be read ({exc.strerror})", fix=fix) from None
    try:
        _check_regular(os.fstat(fd), f"{where}{shown}", fix_missing)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RequirementsError(f"{where}{shown}: cannot be read ({exc.strerror})", fix="check its permissions") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:  # grew while being read
        raise RequirementsError(f"{where}{shown}: is over the {MAX_FILE_BYTES >> 20} MiB parity reads from a requirements file",
                                fix="split it, or check it is the file you meant")  # fmt: skip
    return raw


def _decode(raw: bytes, encoding: str, path: Path, where: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RequirementsError(
            f"{where}{_shown(path)}:{line}: not valid {encoding} text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            fix="re-save the file as UTF-8",
        ) from None


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(first physical line number, text)`` of each non-empty logical line.

    pip's ``join_lines`` then ``ignore_comments``: a trailing backslash continues the
    line; a comment line ends a continuation; comments and blank lines are dropped.
    Linear in the length of the text (pip's own comment regex is quadratic on a line
    of spaces).
    """
    joined: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        comment_line = _is_comment_line(line)
        if not line.endswith("\\") or comment_line:
            if comment_line:
                line = " " + line
            if joined:
                joined.append(line)
                yield from _strip_comment(start, "".join(joined))
                joined = []
            else:
                yield from _strip_comment(number, line)
        else:
            if not joined:
                start = number
            joined.append(line.strip("\\"))
    if joined:
        yield from _strip_comment(start, "".join(joined))


def _is_comment_line(line: str) -> bool:
    """pip's ``COMMENT_RE.match``: ``#`` first, or after leading whitespace."""
    return line.lstrip().startswith("#")


def comment_start(line: str) -> int:
    """Where pip's ``COMMENT_RE`` (``(^|\\s+)#.*$``) starts a comment: the first ``#`` at the
    start of the line or after whitespace (so a URL's ``#egg=`` survives); -1 if none."""
    at = line.find("#")
    while at > 0 and not line[at - 1].isspace():
        at = line.find("#", at + 1)
    return at


def _strip_comment(number: int, line: str) -> Iterator[tuple[int, str]]:
    at = comment_start(line)
    line = (line if at == -1 else line[:at]).strip()
    if line:
        yield number, line


def parse_line(
    line: str, loc: Location, constraint: bool
) -> RequirementLine | OptionLine | ParseProblem:
    """Parse one logical line (comments already stripped)."""
    if _nesting(line) > MAX_NESTING:
        # packaging parses markers recursively: deep parentheses would exhaust the stack
        return ParseProblem(loc, line, f"parentheses nest more than {MAX_NESTING} deep")
    args, options = _break_args_options(line)
    try:
        tokens = shlex.split(options)
    except ValueError as exc:
        return ParseProblem(loc, line, f"cannot split options ({exc})")
    if not args:
        return _option_line(tokens, line, loc, constraint)
    parsed = _option_tokens(tokens, PER_REQUIREMENT_OPTIONS)
    if isinstance(parsed, str):
        return ParseProblem(loc, line, parsed)
    hashes = tuple(v or "" for k, v in parsed if k == "--hash")
    bad = next((h for h in hashes if not _valid_hash(h)), None)
    if bad is not None:
        return ParseProblem(
            loc, line, f"--hash={bad} is not algo:hexdigest with sha256, sha384 or sha512"
        )
    return parse_requirement(args, loc, constraint=constraint, hashes=hashes, text=line)


def _nesting(line: str) -> int:
    """How deep ``(`` nest in ``line`` (one pass, no parsing)."""
    depth = deepest = 0
    for char in line:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")" and depth:
            depth -= 1
    return deepest


def _break_args_options(line: str) -> tuple[str, str]:
    # pip's break_args_options: the requirement ends at the first token starting with "-".
    tokens = line.split(" ")
    args: list[str] = []
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(args), " ".join(tokens[i:])
        args.append(token)
    return " ".join(args), ""


def _option_tokens(
    tokens: list[str], table: Mapping[str, tuple[str, bool]]
) -> list[tuple[str, Optional[str]]] | str:
    """Turn option tokens into ``(canonical option, value)`` pairs, or an error message."""
    out: list[tuple[str, Optional[str]]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = (
            token.partition("=") if token.startswith("--") else (token[:2], "", token[2:])
        )
        if name not in table and name in GLOBAL_OPTIONS:
            return f"{GLOBAL_OPTIONS[name][0]} must be on a line of its own (pip ignores it after a requirement)"
        if name not in table and name in PER_REQUIREMENT_OPTIONS:
            return f"{name} must follow a requirement on the same (continued) line"
        if name not in table:
            return (
                f"unknown option {name!r}"
                if token.startswith("-")
                else f"unexpected {token!r} after the options"
            )
        canonical, takes_value = table[name]
        if not takes_value:
            if eq or inline:
                return f"{canonical} takes no value"
            out.append((canonical, None))
        elif eq or inline:
            out.append((canonical, inline))
        elif i + 1 < len(tokens):
            i += 1
            out.append((canonical, tokens[i]))
        else:
            return f"{canonical} needs a value"
        i += 1
    return out


def _option_line(
    tokens: list[str], line: str, loc: Location, constraint: bool
) -> OptionLine | RequirementLine | ParseProblem:
    parsed = _option_tokens(tokens, GLOBAL_OPTIONS)
    if isinstance(parsed, str):
        return ParseProblem(loc, line, parsed)
    if len(parsed) != 1:
        return ParseProblem(loc, line, "put one option per line")
    option, value = parsed[0]
    if option == "--editable":
        return parse_requirement(value or "", loc, constraint=constraint, editable=True, text=line)
    if value is not None and not value.strip():
        return ParseProblem(loc, line, f"{option} needs a value")
    return OptionLine(loc, option, value)


def parse_requirement(
    spec: str,
    loc: Location,
    *,
    constraint: bool = False,
    editable: bool = False,
    hashes: tuple[str, ...] = (),
    text: Optional[str] = None,
) -> RequirementLine | ParseProblem:
    """Parse the requirement part of a line: PEP 508, an URL, a VCS URL or a local path."""
    text = text if text is not None else spec
    spec = spec.strip()
    if not spec:
        return ParseProblem(loc, text, "empty requirement")
    if _SCHEME_RE.match(spec):
        return _url_requirement(spec, loc, text, constraint, editable, hashes)
    if not editable and not spec.lower().endswith(_ARCHIVE_SUFFIXES):
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            if not _looks_like_path(spec):
                return ParseProblem(loc, text, _first_line(str(exc)))
        else:
            return _pep508_requirement(req, loc, text, constraint, hashes)
    if editable or _looks_like_path(spec):
        return _path_requirement(spec, loc, text, constraint, editable, hashes)
    return ParseProblem(loc, text, f"{spec!r} is neither a requirement, a URL nor a path")


def _pep508_requirement(
    req: Requirement, loc: Location, text: str, constraint: bool, hashes: tuple[str, ...]
) -> RequirementLine | ParseProblem:
    name = canonicalize_name(req.name)
    if not req.url:
        return RequirementLine(
            loc,
            text,
            name,
            "index",
            req.specifier,
            tuple(sorted(req.extras)),
            req.marker,
            None,
            False,
            constraint,
            hashes,
        )
    if constraint:
        return ParseProblem(
            loc, text, "a constraint cannot be a URL (pip refuses 'name @ url' in -c files)"
        )
    kind = "vcs" if req.url.lower().startswith(_VCS_SCHEMES) else "url"
    # an archive's file name carries its version: "name @ .../name-1.0-py3-none-any.whl"
    specifier = _name_from_url(req.url)[1] if kind == "url" else req.specifier
    return RequirementLine(
        loc,
        text,
        name,
        kind,
        specifier,
        tuple(sorted(req.extras)),
        req.marker,
        req.url,
        False,
        constraint,
        hashes,
    )


def _url_requirement(
    spec: str, loc: Location, text: str, constraint: bool, editable: bool, hashes: tuple[str, ...]
) -> RequirementLine | ParseProblem:
    url, _, marker_text = spec.partition("; ")
    marker = None
    if marker_text.strip():
        try:
            marker = Marker(marker_text.strip())
        except InvalidMarker as exc:
            return ParseProblem(loc, text, f"invalid environment marker ({_first_line(str(exc))})")
    url = url.strip()
    if " " in url:
        return ParseProblem(loc, text, f"unexpected space in URL {url!r}")
    kind = (
        "vcs"
        if url.lower().startswith(_VCS_SCHEMES)
        else ("path" if url.lower().startswith("file:") else "url")
    )
    name, specifier = _name_from_url(url)
    if name is False:
        return ParseProblem(loc, text, "invalid #egg= name in URL")
    if constraint:
        return ParseProblem(
            loc, text, "a constraint cannot be a URL (pip refuses URLs in -c files)"
        )
    return RequirementLine(
        loc, text, name or None, kind, specifier, (), marker, url, editable, constraint, hashes
    )


def _path_requirement(
    spec: str, loc: Location, text: str, constraint: bool, editable: bool, hashes: tuple[str, ...]
) -> RequirementLine | ParseProblem:
    if constraint:
        return ParseProblem(loc, text, "a constraint cannot be a path")
    if " " in spec.strip() and not editable:
        return ParseProblem(loc, text, f"unexpected space in path {spec!r}")
    name, specifier = _name_from_url(spec)
    if name is False:
        return ParseProblem(loc, text, "invalid #egg= name")
    return RequirementLine(
        loc, text, name or None, "path", specifier, (), None, spec, editable, constraint, hashes
    )


def _name_from_url(url: str) -> tuple[Any, SpecifierSet]:
    """Name (and exact version, for an archive) an URL or path declares.

    Returns ``(canonical name | None, specifier)``; name False when ``#egg=`` is invalid.
    """
    base, _, fragment = url.partition("#")
    for part in fragment.split("&"):
        key, _, value = part.partition("=")
        if key == "egg" and value:
            try:
                return canonicalize_name(Requirement(value).name), SpecifierSet()
            except InvalidRequirement:
                return False, SpecifierSet()
    filename = unquote(base.rstrip("/").rsplit("/", 1)[-1])
    try:
        if filename.endswith(".whl"):
            name, version, *_ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None, SpecifierSet()
    try:
        return str(name), SpecifierSet(f"=={version}")
    except InvalidSpecifier:
        return str(name), SpecifierSet()


def _looks_like_path(spec: str) -> bool:
    head = spec.split(";", 1)[0].strip()
    return (
        head.startswith((".", "/", "~", "\\"))
        or "/" in head
        or "\\" in head
        or head.lower().endswith(_ARCHIVE_SUFFIXES)
    )


def _valid_hash(value: str) -> bool:
    match = _HASH_RE.fullmatch(value)
    return match is not None and len(match.group(2)) == _HASH_HEX_LEN[match.group(1)]


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "invalid requirement"
