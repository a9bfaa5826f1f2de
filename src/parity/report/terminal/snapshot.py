"""The terminal report of a snapshot: a few lines a person reads to check it is the
environment they meant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from parity.report.terminal._markup import group, plain

if TYPE_CHECKING:
    from rich.console import RenderableType


def snapshot_report(snap: Mapping[str, Any], output: Optional[str] = None) -> RenderableType:
    """Interpreter, packages, CPU, GPU, runtime, and where the snapshot was written (``output``)."""
    py, plat, cpu = snap["python"], snap["platform"], snap["cpu"]
    lines = [
        f"snapshot of {py['executable']} ({py['implementation']} {py['version']}, "
        f"{plat['system']} {plat['machine']}, glibc {plat.get('glibc') or '-'})",
        f"  packages: {len(snap['packages'])}{_torch_line(snap)}",
        f"  cpu: {cpu.get('model') or '?'}, {cpu.get('logical_cores')} logical cores, "
        f"ISA: {' '.join(cpu.get('flags') or []) or '-'}",
        f"  gpu: {_gpu_line(snap['gpu'])}",
        f"  runtime: {_runtime_line(snap.get('runtime'))}",
        f"wrote {output}" if output else "not saved: add -o FILE to write it, or --json to print it",
    ]
    return group(plain(line) for line in lines)


def _torch_line(snap: Mapping[str, Any]) -> str:
    torch = snap.get("torch")
    if not torch:
        return " (no torch)"
    return f" (torch {torch['version']}, {torch['variant']} build)"


def _gpu_line(gpu: Mapping[str, Any]) -> str:
    if gpu.get("devices"):
        names = ", ".join(d["name"] for d in gpu["devices"])
        return f"{names}; driver {gpu.get('driver_version')}, CUDA driver {gpu.get('cuda_driver_version')}"
    return f"{gpu.get('status')} ({gpu.get('reason')})"


def _runtime_line(runtime: Optional[Mapping[str, Any]]) -> str:
    if runtime is None:
        return "not collected (add --runtime for BLAS, threads and precision flags)"
    libs = [lib for lib in (runtime.get("threadpool") or {}).values() if isinstance(lib, dict)]
    blas = ", ".join(
        f"{lib['internal_api']} {lib.get('version') or ''} ({lib.get('architecture') or '-'}, "
        f"{lib.get('num_threads')} threads)"
        for lib in libs if lib.get("user_api") == "blas"
    )
    blas = f"BLAS {blas}" if blas else "no BLAS library loaded"
    torch = runtime.get("torch") or {}
    if not torch:
        return f"{blas}; torch: {runtime.get('torch_error')}"
    return f"{blas}; torch CPU capability {torch.get('cpu_capability')}, {torch.get('num_threads')} threads"
