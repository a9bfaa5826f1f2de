"""The capture hooks' one-pass kernel (``_summary.c``), compiled once per machine when a
C compiler is present, and the reason when it is not used.

Summarising a layer output takes several passes over its memory with numpy and torch
(the hash blocks, then aminmax, sum and dot); inside a forward that costs 0.2-0.3 ms
per MB on a 2-core machine, most of the capture overhead. The C kernel reads each
value once for the hash blocks, min, max, sum and sum of squares (float32), or for the
hash blocks alone (any dtype), at memory speed; for float32 the same pass also takes the
sum of absolute values and, block by block while it is in cache, the layer's linear
sketch (docs/stats-sketch.md). It is optional: with no compiler, with
``PARITY_NATIVE=0``, or when its self-test disagrees with the numpy path, capture
takes that path, with the same hashes, the same sketch bits (:func:`sketch_numpy`
makes the same double additions in the same order) and the same stats up to float
rounding.

The shared library is cached in ``$PARITY_CACHE_DIR`` (default
``$XDG_CACHE_HOME/parity`` or ``~/.cache/parity``) under a name keyed by the source,
the flags, the compiler and the platform; it is compiled into a temporary file and
renamed, so concurrent processes never load a half-written one. Nothing is downloaded.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from parity._io import cache_root
from parity.records.hashdef import BLOCK, MASK, hash_keys

_SOURCE = Path(__file__).with_name("_summary.c")
# Reassociation lets the compiler vectorise the float sums; no finite-math assumption,
# so NaN and Inf still reach the sum of squares, where the caller looks for them.
_FLAGS = ("-O3", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
          "-fno-signed-zeros")
_ABI = 2
#: the sketch's shape (rows x buckets) and the chunk of consecutive elements sharing a sign pattern
SKETCH_ROWS = 4
SKETCH_BUCKETS = 16
SKETCH_CHUNK = 16
SKETCH_SIZE = SKETCH_ROWS * SKETCH_BUCKETS
#: what a sketch call returns: the sketch, then per bucket the sum of x^2 of its elements
SKETCH_OUT = 2 * SKETCH_SIZE
_GOLDEN = 0x9E3779B97F4A7C15
_PATTERNS = 1 << SKETCH_ROWS
_CHUNKS_PER_BLOCK = BLOCK // SKETCH_CHUNK
_NUMPY_BLOCKS = 64  # blocks per step of the numpy sketch: its temporaries stay near 2 MB
_COMPILE_TIMEOUT_S = 120

_why_not: str | None = None


class Kernel:
    """The loaded library: :meth:`f32_summary`, :meth:`f32_sketch` and :meth:`block_hashes`
    over numpy arrays."""

    def __init__(self, lib: Any, keys: Any) -> None:
        self._lib = lib
        self._keys = keys  # kept alive: the library reads it by address
        self._keys_ptr = keys.ctypes.data
        self._f32 = lib.parity_f32_summary
        self._f32.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_uint32, ctypes.c_void_p]
        self._f32.restype = None
        self._sketch = lib.parity_f32_sketch
        self._sketch.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p]
        self._sketch.restype = None
        self._hashes = lib.parity_block_hashes
        self._hashes.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        self._hashes.restype = None

    def f32_summary(self, flat: Any, block: int) -> tuple[Any, list[float]]:
        """(block hashes or None, [min, max, sum, sum of squares]) of a contiguous 1-D
        float32 array, in one pass."""
        hashes, moments, _ = self.f32_summary_sketch(flat, block, None)
        return hashes, moments[:4]

    def f32_summary_sketch(self, flat: Any, block: int, seed: int | None) -> tuple[Any, list[float], Any]:
        """(block hashes or None, [min, max, sum, sum of squares, sum of |x|], sketch or
        None) of a contiguous 1-D float32 array, in one pass; the sketch (SKETCH_OUT
        float64, see :meth:`f32_sketch`) only with a ``seed``."""
        nblocks = flat.size // block
        hashes = np.empty(nblocks, dtype="<u4")
        out = np.empty(5, dtype=np.float64)
        sketch = np.empty(SKETCH_OUT, dtype=np.float64) if seed is not None else None
        self._f32(flat.ctypes.data, flat.size, self._keys_ptr, hashes.ctypes.data, out.ctypes.data,
                  seed or 0, sketch.ctypes.data if sketch is not None else None)
        return (hashes if nblocks else None), out.tolist(), sketch

    def f32_sketch(self, flat: Any, seed: int) -> Any:
        """SKETCH_OUT float64 of a contiguous 1-D float32 array: the sketch (rows x
        buckets), then per bucket the sum of x^2 of its elements."""
        sketch = np.empty(SKETCH_OUT, dtype=np.float64)
        self._sketch(flat.ctypes.data, flat.size, seed, sketch.ctypes.data)
        return sketch

    def block_hashes(self, words: Any) -> Any:
        """Block hashes of a C-contiguous (blocks, 4096) uint32 array."""
        hashes = np.empty(words.shape[0], dtype="<u4")
        self._hashes(words.ctypes.data, words.shape[0], self._keys_ptr, hashes.ctypes.data)
        return hashes


def why_not() -> str | None:
    """None when the kernel is in use, else why not (one line); loads it if needed."""
    kernel()
    return _why_not


@functools.lru_cache(maxsize=1)
def kernel() -> Kernel | None:
    """The compiled kernel, or None (the reason is in :func:`why_not`). Never raises."""
    global _why_not
    setting = os.environ.get("PARITY_NATIVE", "1").strip()
    if setting.lower() in ("0", "false", "no", "off"):
        _why_not = f"disabled by PARITY_NATIVE={setting}"
        return None
    try:
        lib = _load()
        loaded = Kernel(lib, hash_keys())
        problem = _self_test(loaded)
    except _Unavailable as exc:
        _why_not = str(exc)
        return None
    except Exception as exc:  # an optional speed-up: whatever goes wrong, capture goes on without it
        _why_not = f"the summary kernel could not be set up ({type(exc).__name__}: {exc}); capture uses the numpy path"
        return None
    if problem:
        _why_not = f"the compiled kernel failed its self-test ({problem}); capture uses the numpy path"
        return None
    _why_not = None
    return loaded


class _Unavailable(Exception):
    pass


def _compiler() -> list[str]:
    for candidate in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc", "clang"):
        if not candidate:
            continue
        words = shlex.split(candidate)
        found = shutil.which(words[0]) if words else None
        if found:
            return [found, *words[1:]]
    raise _Unavailable("no C compiler found (set CC); capture uses the numpy path")


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$PARITY_CACHE_DIR``, else parity's cache folder."""
    explicit = os.environ.get("PARITY_CACHE_DIR")
    return Path(explicit) if explicit else cache_root()


def _load() -> Any:
    source = _SOURCE.read_bytes()
    compiler = _compiler()
    key = hashlib.sha256(b"\0".join([source, " ".join(_FLAGS).encode(), " ".join(compiler).encode(),
                                     platform.machine().encode(), sys.platform.encode()])).hexdigest()[:20]
    suffix = ".dll" if sys.platform == "win32" else ".so"
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _Unavailable(f"cannot create the kernel cache {directory} ({exc.strerror}); set PARITY_CACHE_DIR") from None
    target = directory / f"summary-{key}{suffix}"
    fresh = not target.exists()
    if fresh:
        _compile(compiler, directory, target)
    try:
        return _open(target)
    except _Unavailable:
        if fresh:
            raise
    target.unlink(missing_ok=True)  # a damaged cached build: replaced (a new file, never rewritten in place)
    _compile(compiler, directory, target)
    return _open(target)


def _open(path: Path) -> Any:
    try:
        lib = ctypes.CDLL(str(path))
        abi = lib.parity_abi()
    except (OSError, AttributeError) as exc:
        raise _Unavailable(f"cannot load {path} ({exc}); capture uses the numpy path") from None
    if abi != _ABI:
        raise _Unavailable(f"{path} does not match this parity version; capture uses the numpy path")
    return lib


def _compile(compiler: list[str], directory: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".summary-", suffix=target.suffix, dir=directory)
    os.close(fd)
    try:
        try:
            done = subprocess.run([*compiler, *_FLAGS, "-o", tmp, str(_SOURCE)], capture_output=True,
                                  text=True, timeout=_COMPILE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _Unavailable(f"the C compiler {compiler[0]} did not run ({exc}); capture uses the numpy path") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise _Unavailable(f"the C compiler {compiler[0]} failed ({last}); capture uses the numpy path")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _self_test(k: Kernel) -> str | None:
    """Compare the kernel with the numpy definitions on fixed data: a wrong build (a
    compiler that miscompiles or ignores the flags) is never used."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal(3 * BLOCK + 123).astype(np.float32)
    values[5] = -1.5e18  # large words with the sign bit set (and negatives throughout)
    hashes, moments = k.f32_summary(values, BLOCK)
    words = values[: 3 * BLOCK].view("<u4").reshape(3, BLOCK)
    expected = np.einsum("ij,j->i", words, hash_keys()).astype("<u4")
    if hashes is None or not np.array_equal(hashes, expected):
        return "hash blocks differ"
    if not np.array_equal(k.block_hashes(np.ascontiguousarray(words)), expected):
        return "hash-only blocks differ"
    wide = values.astype(np.float64)
    want = [float(wide.min()), float(wide.max()), float(wide.sum()), float(np.dot(wide, wide))]
    if moments[:2] != want[:2] or not np.allclose(moments[2:], want[2:], rtol=1e-5, atol=1e-3):
        return "stats differ"
    _, moments, sketch = k.f32_summary_sketch(values, BLOCK, 99)
    if not np.isclose(moments[4], float(np.abs(wide).sum()), rtol=1e-5):
        return "sum of absolute values differs"
    slow, alone = sketch_numpy(values, 99), k.f32_sketch(values, 99)
    if not (np.array_equal(sketch[:SKETCH_SIZE], slow[:SKETCH_SIZE])
            and np.array_equal(sketch[:SKETCH_SIZE], alone[:SKETCH_SIZE])
            and np.allclose(sketch, slow, rtol=1e-5) and np.allclose(alone, slow, rtol=1e-5)):
        return "sketch differs"
    return None

def _mix64(z: Any) -> Any:
    """splitmix64's output function on a numpy uint64 array (wraps mod 2^64, like C)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sketch_keys(seed: int) -> tuple[int, int]:
    """(chunk key, block key) of a sketch seed, as ``parity_sketch_keys`` in the kernel."""
    ckey = int(_mix64(np.asarray([(seed + _GOLDEN) & MASK], dtype=np.uint64))[0])
    bkey = int(_mix64(np.asarray([(ckey + _GOLDEN) & MASK], dtype=np.uint64))[0])
    return ckey, bkey


@functools.lru_cache(maxsize=1)
def _pattern_signs() -> Any:
    """(patterns, rows) of +1.0 / -1.0: row r's sign for a chunk of sign pattern p is bit r of p."""
    p = np.arange(_PATTERNS)[:, None]
    return np.where((p >> np.arange(SKETCH_ROWS)[None, :]) & 1, -1.0, 1.0)


def sketch_numpy(flat: Any, seed: int) -> Any:
    """:meth:`Kernel.f32_sketch` without the kernel: the sketch by the same double
    additions in the same order as ``parity_f32_sketch`` (``np.add.at`` and ``cumsum``
    add in index order), so the same bits; the buckets' sums of x^2 up to rounding.
    Taken ``_NUMPY_BLOCKS`` blocks at a time."""
    ckey, bkey = sketch_keys(seed)
    sketch = np.zeros((SKETCH_ROWS, SKETCH_BUCKETS), dtype=np.float64)
    squares = np.zeros((SKETCH_ROWS, SKETCH_BUCKETS), dtype=np.float64)
    step = _NUMPY_BLOCKS * BLOCK
    golden, lanes = np.uint64(_GOLDEN), np.arange(SKETCH_BUCKETS)
    for start in range(0, flat.size, step):
        piece = flat[start:start + step]
        nchunks = -(-piece.size // SKETCH_CHUNK)
        values = np.zeros(nchunks * SKETCH_CHUNK, dtype=np.float64)
        values[:piece.size] = piece
        g = np.arange(start // SKETCH_CHUNK, start // SKETCH_CHUNK + nchunks, dtype=np.uint64)
        words = _mix64(np.uint64(ckey) + (g // np.uint64(16) + np.uint64(1)) * golden)
        patterns = ((words >> (np.uint64(4) * (g % np.uint64(16)))) & np.uint64(_PATTERNS - 1)).astype(np.intp)
        local = np.arange(nchunks) // _CHUNKS_PER_BLOCK
        nblocks = int(local[-1]) + 1
        bins = np.zeros((nblocks, _PATTERNS, SKETCH_CHUNK), dtype=np.float64)
        np.add.at(bins, (local, patterns), values.reshape(nchunks, SKETCH_CHUNK))
        rows = np.zeros((nblocks, SKETCH_ROWS, SKETCH_CHUNK), dtype=np.float64)
        signs = _pattern_signs()
        for p in range(_PATTERNS):
            rows = rows + signs[p][None, :, None] * bins[:, p, None, :]
        b = np.arange(start // BLOCK + 1, start // BLOCK + nblocks + 1, dtype=np.uint64)
        offsets = _mix64(np.uint64(bkey) + b * golden)
        shifts = np.uint64(4) * np.arange(SKETCH_ROWS, dtype=np.uint64)
        rot = ((offsets[:, None] >> shifts[None, :]) & np.uint64(SKETCH_BUCKETS - 1)).astype(np.intp)
        where = (lanes[None, None, :] + rot[:, :, None]) & (SKETCH_BUCKETS - 1)
        placed = np.zeros_like(rows)
        np.put_along_axis(placed, where, rows, axis=2)
        sketch = np.cumsum(np.concatenate([sketch[None], placed]), axis=0)[-1]
        whole = np.zeros(nblocks * BLOCK, dtype=np.float64)
        whole[:values.size] = values
        by_lane = whole.reshape(nblocks, _CHUNKS_PER_BLOCK, SKETCH_CHUNK)
        spread = np.zeros_like(rows)
        np.put_along_axis(spread, where, np.broadcast_to((by_lane * by_lane).sum(axis=1)[:, None, :], rows.shape),
                          axis=2)
        squares += spread.sum(axis=0)
    return np.concatenate([sketch.reshape(-1), squares.reshape(-1)])
