"""Take, run elsewhere, load and check environment snapshots (schema ``parity.snapshot/1``).

``snapshot()`` measures this interpreter in-process; ``snapshot_from_python(path)``
measures another one by piping the stdlib-only collector sources into
``path -E -c BOOTSTRAP`` (nothing is installed there, nothing is written there).
``load_snapshot(spec)`` turns what a user typed (a file, a record directory or
``"current"``) into a checked snapshot dict.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from parity._io import (
    check_not_lfs_pointer,
    is_url,
    read_json,
    read_json_url,
    read_url_bytes,
    sha256_bytes,
    sha256_file,
    url_shown,
    url_text,
)
from parity._version import __version__
from parity.env import _collect, runtime
from parity.errors import ParityError, RecordError, SnapshotError

SCHEMA = _collect.SCHEMA
#: PEP 503 name normaliser: what ``packages`` is keyed by (defined in the stdlib-only collector)
canonical_name = _collect.canonical_name
SCHEMA_NAME, SCHEMA_VERSION = "parity.snapshot", 1
SCHEMA_FILE = Path(__file__).with_name("snapshot.schema.json")
#: A snapshot is a few hundred KiB; a file larger than this is refused unread.
MAX_SNAPSHOT_BYTES = 64 << 20
#: Seconds a foreign interpreter may take (``--runtime`` imports torch there).
FOREIGN_TIMEOUT = 300.0

_SCHEMA_RE = re.compile(r"^parity\.snapshot/(\d{1,6})$")
_MARKER = "@@parity-snapshot@@"
_FIX_SNAPSHOT = "create one with `parity snapshot -o FILE`, or pass a record directory or `current`"
_FIX_PYTHON = "pass the path of a Python 3.7+ executable, e.g. /srv/venv/bin/python"
#: Oldest interpreter the collectors run in (``from __future__ import annotations``).
MIN_FOREIGN_PYTHON = (3, 7)

# Runs in the foreign interpreter: rebuilds the two collector modules from the sources
# sent on stdin and prints the snapshot after a marker, so anything a package prints
# while being imported (--runtime) cannot corrupt the JSON.
_BOOTSTRAP = """\
import json, sys, types
payload = json.loads(sys.stdin.read())
mods = {}
for name, src in payload["modules"]:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    exec(compile(src, name + ".py", "exec"), mod.__dict__)
    mods[name] = mod
snap = mods["_parity_collect"].collect()
if payload["runtime"]:
    snap["runtime"] = mods["_parity_runtime"].collect_runtime()
sys.stdout.write("\\n" + payload["marker"] + json.dumps(snap))
sys.stdout.flush()
"""


def snapshot(python: str | os.PathLike[str] | None = None, runtime: bool = False) -> dict[str, Any]:
    """Snapshot of this interpreter, or of the interpreter at ``python`` (run as a subprocess).

    ``runtime=True`` adds the ``runtime`` section, which imports torch (in the measured
    interpreter). Raises :class:`SnapshotError` when ``python`` cannot be run as Python.
    """
    if python is None:
        snap = _collect.collect()
        if runtime:
            snap["runtime"] = _runtime_in_process()
    else:
        snap = snapshot_from_python(python, runtime=runtime)
    snap["meta"]["parity_version"] = __version__
    return snap


def _runtime_in_process() -> dict[str, Any]:
    # A function of its own: inside snapshot() the ``runtime`` flag shadows the module.
    return runtime.collect_runtime()


def snapshot_from_python(python: str | os.PathLike[str], runtime: bool = False) -> dict[str, Any]:
    """Run the collectors inside the interpreter ``python`` (a file, or a venv folder).

    Only the standard library of that interpreter is used (plus torch/threadpoolctl with
    ``runtime``); parity is not installed there and nothing is written there.
    """
    exe = resolve_interpreter(python)
    payload = json.dumps({"modules": _module_sources(), "runtime": runtime, "marker": _MARKER})
    # -E: this shell's PYTHONPATH/PYTHONHOME are not the measured service's. Not -I: its
    # -s would hide user site-packages, which that interpreter does see. The empty cwd
    # keeps the '' entry of -c from importing stray files.
    try:
        with tempfile.TemporaryDirectory(prefix="parity-snapshot-") as empty:
            proc = subprocess.run(
                [str(exe), "-E", "-c", _BOOTSTRAP], input=payload, capture_output=True,
                text=True, timeout=FOREIGN_TIMEOUT, cwd=empty,
            )
    except subprocess.TimeoutExpired:
        raise SnapshotError(f"{exe}: took more than {FOREIGN_TIMEOUT:.0f} s to snapshot", fix="retry without --runtime") from None
    except OSError as exc:
        raise SnapshotError(f"{exe}: cannot be run as a Python interpreter ({exc.strerror})", fix=_FIX_PYTHON) from None
    snap = _parse_foreign_output(exe, proc)
    snap["meta"]["collected_by"] = "subprocess"
    return snap


def resolve_interpreter(python: str | os.PathLike[str]) -> Path:
    """The executable behind ``--python``: a file, or a venv/prefix folder's bin/python."""
    path = Path(python).expanduser()
    if path.is_dir():
        for candidate in ("bin/python", "bin/python3", "Scripts/python.exe"):
            if (path / candidate).is_file():
                return (path / candidate).absolute()
        raise SnapshotError(f"{path}: is a directory with no bin/python", fix=_FIX_PYTHON)
    if not path.exists():
        raise SnapshotError(f"{path}: no such interpreter", fix=_FIX_PYTHON)
    if not os.access(path, os.X_OK):
        raise SnapshotError(f"{path}: is not executable, so not a Python interpreter", fix=_FIX_PYTHON)
    return path.absolute()


def _module_sources() -> list[tuple[str, str]]:
    # inspect.getsource goes through the module's loader: works for a zipped parity too.
    import inspect

    return [("_parity_collect", inspect.getsource(_collect)), ("_parity_runtime", inspect.getsource(runtime))]


def _parse_foreign_output(exe: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    out = proc.stdout or ""
    if proc.returncode != 0 or _MARKER not in out:
        version = _python_version(exe)
        if version is not None and version < MIN_FOREIGN_PYTHON:
            raise SnapshotError(
                f"{exe}: is Python {version[0]}.{version[1]}; the collectors need Python "
                f"{MIN_FOREIGN_PYTHON[0]}.{MIN_FOREIGN_PYTHON[1]}+", fix=_FIX_PYTHON)
        last = _last_line(proc.stderr) or f"exit status {proc.returncode}"
        raise SnapshotError(f"{exe}: is not a Python interpreter parity can use ({last})", fix=_FIX_PYTHON)
    try:
        snap = json.loads(out.rsplit(_MARKER, 1)[1])
    except ValueError as exc:
        raise SnapshotError(f"{exe}: returned an unreadable snapshot ({exc})", fix=_FIX_PYTHON) from None
    return check_snapshot(snap, str(exe))


def _python_version(exe: Path) -> tuple[int, int] | None:
    """(major, minor) of ``exe`` when it is some Python (even 2.x), else None."""
    probe = "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"
    try:
        proc = subprocess.run([str(exe), "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    major, _, minor = proc.stdout.strip().partition(".")
    if proc.returncode != 0 or not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def load_snapshot(spec: str | os.PathLike[str]) -> dict[str, Any]:
    """A checked snapshot from ``spec``: ``"current"`` (this interpreter, no runtime),
    a snapshot JSON file, a bench result JSON (its ``env``), a record directory (its
    ``env.json``), or a virtual environment folder (``pyvenv.cfg``; snapshotted from
    outside, as ``--python`` does). Raises :class:`SnapshotError` naming ``spec`` otherwise."""
    if str(spec) == "current":
        return snapshot()
    if is_url(spec):  # a record or snapshot file on object storage (parity[s3])
        return _load_url_snapshot(url_text(spec))
    path = Path(spec)
    if path.is_dir() and (path / "pyvenv.cfg").is_file() and not (path / "env.json").exists():
        return snapshot(python=path)
    if path.is_dir():
        return check_snapshot(_env_of_record(path), str(path / "env.json"))
    data = read_snapshot_file(path)
    if isinstance(data, dict) and data.get("schema") == "parity.bench/1" and isinstance(data.get("env"), dict):
        data = data["env"]
    return check_snapshot(data, str(path))


def read_snapshot_file(path: Path) -> Any:
    """The JSON of a snapshot file; :class:`SnapshotError` naming ``path`` when it is not a
    regular file (a FIFO or ``/dev/zero`` would block or never end), is larger than
    :data:`MAX_SNAPSHOT_BYTES`, or is not JSON."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file", fix=_FIX_SNAPSHOT) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long, no permission
        raise SnapshotError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})", fix=_FIX_SNAPSHOT) from None
    if not stat.S_ISREG(info.st_mode):
        raise SnapshotError(f"{path}: is not a regular file (a FIFO, device or socket), so not a snapshot", fix=_FIX_SNAPSHOT)
    if info.st_size > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"{path}: is {info.st_size} bytes, too large for a snapshot (they are well under "
                            f"{MAX_SNAPSHOT_BYTES >> 20} MiB)", fix=_FIX_SNAPSHOT)
    try:
        return read_json(path, "a snapshot", fix=_FIX_SNAPSHOT)
    except SnapshotError:
        raise
    except ParityError as exc:
        raise SnapshotError(exc.message, fix=exc.fix) from None


#: What env knows of a record (``parity.records.format``, whose docstring is normative):
#: ``manifest.json`` lists every file with its ``size`` and ``sha256``, and ``env.json`` is
#: the environment snapshot. Read here with :mod:`parity._io` alone: env never imports records.
RECORD_MANIFEST, RECORD_ENV, RECORD_FORMAT = "manifest.json", "env.json", "parity.record"


def _env_of_record(folder: Path) -> Any:
    """env.json of a record, refused (RecordError) when the manifest does not list it or
    it does not match its manifest entry (size, sha256); a plain folder holding env.json
    is read as is. The rest of the record is not checked: the snapshot needs env.json alone."""
    env = folder / RECORD_ENV
    manifest_path = folder / RECORD_MANIFEST
    if not manifest_path.is_file():
        if not env.is_file():
            raise SnapshotError(f"{folder}: is a directory but not a record (no env.json)", fix=_FIX_SNAPSHOT)
        return read_snapshot_file(env)
    check_not_lfs_pointer(manifest_path)
    manifest = read_json(manifest_path, "a record manifest", fix="pass the directory written by `parity record`")
    if not isinstance(manifest, dict) or manifest.get("format") != RECORD_FORMAT:
        raise RecordError(f"{manifest_path}: not a parity record manifest",
                          fix="pass the directory written by `parity record`")
    files = manifest.get("files")
    meta = files.get(RECORD_ENV) if isinstance(files, dict) else None
    if not isinstance(meta, dict):
        raise RecordError(f"{env}: not in this record", fix="record again with an environment snapshot")
    _check_listed_file(env, meta)
    return read_snapshot_file(env)


def _load_url_snapshot(url: str) -> dict[str, Any]:
    """:func:`load_snapshot` of a URL: a ``.json`` object is a snapshot (or bench) file,
    anything else a record prefix whose env.json is checked against its manifest."""
    if url.endswith(".json"):
        data = read_json_url(url, "a snapshot", fix=_FIX_SNAPSHOT, max_bytes=MAX_SNAPSHOT_BYTES, error=SnapshotError)
        if isinstance(data, dict) and data.get("schema") == "parity.bench/1" and isinstance(data.get("env"), dict):
            data = data["env"]
        return check_snapshot(data, url_shown(url))
    manifest_url, env_url = f"{url}/{RECORD_MANIFEST}", f"{url}/{RECORD_ENV}"
    try:
        manifest = json.loads(read_url_bytes(manifest_url, max_bytes=MAX_SNAPSHOT_BYTES, error=RecordError))
    except FileNotFoundError:
        raise RecordError(f"{url_shown(url)}: no record here (no {RECORD_MANIFEST}: nothing was recorded there, or the "
                          "record was interrupted)", fix="pass the URL given to `parity record -o`") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != RECORD_FORMAT:
        raise RecordError(f"{url_shown(manifest_url)}: not a parity record manifest",
                          fix="pass the URL given to `parity record -o`")
    files = manifest.get("files")
    meta = files.get(RECORD_ENV) if isinstance(files, dict) else None
    if not isinstance(meta, dict):
        raise RecordError(f"{url_shown(env_url)}: not in this record", fix="record again with an environment snapshot")
    try:
        raw = read_url_bytes(env_url, max_bytes=MAX_SNAPSHOT_BYTES, error=RecordError)
    except FileNotFoundError:
        raise RecordError(f"{url_shown(env_url)}: missing from the record", fix="record again") from None
    if len(raw) != meta.get("size") or sha256_bytes(raw) != meta.get("sha256"):
        raise RecordError(f"{url_shown(env_url)}: size or sha256 does not match the manifest (corrupted or modified)",
                          fix="copy the record again from its source, or record again")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SnapshotError(f"{url_shown(env_url)}: not a snapshot (invalid JSON: {exc})", fix=_FIX_SNAPSHOT) from None
    return check_snapshot(data, url_shown(env_url))


def _check_listed_file(path: Path, meta: dict[str, Any]) -> None:
    """RecordError unless ``path`` is present, not a git-LFS pointer, and of the size and
    sha256 its manifest entry ``meta`` lists."""
    if not path.is_file():
        raise RecordError(f"{path}: missing from the record", fix="copy the whole record directory, or record again")
    check_not_lfs_pointer(path)
    size = path.stat().st_size
    if size != meta.get("size"):
        raise RecordError(f"{path}: size {size} bytes, manifest says {meta.get('size')} (truncated or modified)",
                          fix="copy the record again from its source")
    if sha256_file(path) != meta.get("sha256"):
        raise RecordError(f"{path}: sha256 does not match the manifest (corrupted or modified)",
                          fix="copy the record again from its source")


def check_snapshot(data: Any, source: str) -> dict[str, Any]:
    """Refuse what is not a snapshot this parity can read; ``source`` names it in errors.
    Returns the snapshot with its credentials masked again (:func:`mask_credentials`).

    The full JSON Schema is :data:`SCHEMA_FILE`; this check is the part a reader relies
    on (schema tag and version, the type of every section and field diff, lock and
    doctor read), kept cheap and dependency-free.
    """
    if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
        raise SnapshotError(f"{source}: not a snapshot (no \"schema\" field)", fix=_FIX_SNAPSHOT)
    m = _SCHEMA_RE.match(data["schema"])
    if not m:
        raise SnapshotError(f"{source}: not a snapshot (schema is {_short(data['schema'])})", fix=_FIX_SNAPSHOT)
    if int(m.group(1)) > SCHEMA_VERSION:
        raise SnapshotError(
            f"{source}: written by a newer parity (schema {data['schema']}; this parity {__version__} reads up to {SCHEMA})",
            fix="upgrade parity here, or take the snapshot with this parity version",
        )
    for section in ("meta", "python", "platform", "cpu", "packages", "env_vars"):
        if not isinstance(data.get(section), dict):
            raise SnapshotError(f"{source}: not a complete snapshot (section {section!r} missing)", fix=_FIX_SNAPSHOT)
    problem = _section_problem(data) or _packages_problem(data["packages"])
    if problem:
        raise SnapshotError(f"{source}: not a snapshot parity can read ({problem})", fix=_FIX_SNAPSHOT)
    return mask_credentials(data)


#: Sections and fields that must have one JSON type when present: (path, types, shown as).
_FIELD_TYPES: tuple[tuple[tuple[str, ...], tuple[type, ...], str], ...] = (
    (("torch",), (dict, type(None)), "an object or null"),
    (("gpu",), (dict, type(None)), "an object or null"),
    (("runtime",), (dict, type(None)), "an object or null"),
    (("nvidia_wheels",), (dict, type(None)), "an object or null"),
    (("cpu", "flags"), (list, type(None)), "a list"),
    (("gpu", "devices"), (list, type(None)), "a list"),
    (("meta", "sys_path"), (list, type(None)), "a list"),
    (("runtime", "torch"), (dict, type(None)), "an object or null"),
    (("runtime", "threadpool"), (dict, type(None)), "an object or null"),
)


def _section_problem(data: dict[str, Any]) -> str | None:
    for path, types, shown in _FIELD_TYPES:
        value: Any = data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, types):
            return f"{'.'.join(path)} is not {shown}"
    flags = (data["cpu"].get("flags") or [])
    if not all(isinstance(f, str) for f in flags):
        return "cpu.flags holds something that is not a string"
    bad = next((k for k, v in data["env_vars"].items() if not isinstance(v, str)), None)
    return None if bad is None else f"env_vars.{_short(bad)} is not a string"


def _packages_problem(packages: dict[str, Any]) -> str | None:
    for key, dist in packages.items():
        if not isinstance(dist, dict) or not isinstance(dist.get("version"), str):
            return f"package {_short(key)} has no version"
        for field in ("vcs", "direct_url", "variant"):
            if not isinstance(dist.get(field), (dict, type(None))):
                return f"package {_short(key)}: {field} is not an object or null"
    return None


def _short(value: Any) -> str:
    from parity._text import one_line

    text = one_line(repr(value))
    return text if len(text) <= 80 else text[:79] + "…"


def mask_credentials(snap: dict[str, Any]) -> dict[str, Any]:
    """``snap`` with credentials masked as a snapshot taken today masks them: variables
    off the allow-list or named like a credential dropped, every value, index URL and
    direct URL through :func:`parity.env._collect.redact`. A snapshot written by an
    older parity (or edited by hand) may hold what today's would not; nothing read from
    one reaches a report unmasked. The caller's dict is not changed."""
    redact = _collect.redact
    out = dict(snap)
    out["env_vars"] = {k: redact(v) for k, v in snap["env_vars"].items() if _collect.env_var_recorded(k)}
    packages = {}
    for name, dist in snap["packages"].items():
        url = (dist.get("direct_url") or {}).get("url")
        if isinstance(url, str) and redact(url) != url:
            dist = {**dist, "direct_url": {**dist["direct_url"], "url": redact(url)}}
            if dist.get("editable_location") == url:
                dist["editable_location"] = redact(url)
        packages[name] = dist
    out["packages"] = packages
    if isinstance(snap.get("package_sources"), dict):
        out["package_sources"] = _mask_values(snap["package_sources"])
    return out


def _mask_values(value: Any) -> Any:
    """Every string in a JSON tree through ``redact`` (package_sources: URLs, paths, errors)."""
    if isinstance(value, str):
        return _collect.redact(value)
    if isinstance(value, dict):
        return {k: _mask_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_values(v) for v in value]
    return value


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) shipped with parity for ``parity.snapshot/1``."""
    result: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return result
