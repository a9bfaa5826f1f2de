"""``parity snapshot``: write an exact snapshot of a Python environment."""

from __future__ import annotations

from typing import Any, Optional

import click

from parity.cli._common import EXIT_OK, emit_json, json_option


@click.command("snapshot")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), help="Write the snapshot JSON to FILE.")
@click.option("--python", "python", metavar="PATH", help="Snapshot another interpreter (or venv folder) instead of this one; nothing is installed there.")
@click.option("--runtime", is_flag=True, help="Also import torch there: BLAS/OpenMP libraries, threads, precision flags.")
@json_option
def command(output: Optional[str], python: Optional[str], runtime: bool, as_json: bool) -> int:
    """Write an exact snapshot of a Python environment (schema parity.snapshot/1)."""
    from parity._io import atomic_write_json
    from parity.env.snapshot import snapshot

    snap = snapshot(python=python, runtime=runtime)
    if output:
        atomic_write_json(output, snap)
    if as_json:
        emit_json(snap)
    else:
        click.echo(summary(snap, output))
    return EXIT_OK


def summary(snap: dict[str, Any], output: Optional[str]) -> str:
    """A few lines a person reads to check the snapshot is the environment they meant."""
    py, plat, cpu = snap["python"], snap["platform"], snap["cpu"]
    lines = [
        f"snapshot of {py['executable']} ({py['implementation']} {py['version']}, "
        f"{plat['system']} {plat['machine']}, glibc {plat.get('glibc') or '-'})",
        f"  packages: {len(snap['packages'])}{_torch_line(snap)}",
        f"  cpu: {cpu.get('model') or '?'}, {cpu.get('logical_cores')} logical cores, ISA: {' '.join(cpu.get('flags') or []) or '-'}",
        f"  gpu: {_gpu_line(snap['gpu'])}",
        f"  runtime: {_runtime_line(snap.get('runtime'))}",
    ]
    lines.append(f"wrote {output}" if output else "not saved: add -o FILE to write it, or --json to print it")
    return "\n".join(lines)


def _torch_line(snap: dict[str, Any]) -> str:
    torch = snap.get("torch")
    if not torch:
        return " (no torch)"
    return f" (torch {torch['version']}, {torch['variant']} build)"


def _gpu_line(gpu: dict[str, Any]) -> str:
    if gpu.get("devices"):
        names = ", ".join(d["name"] for d in gpu["devices"])
        return f"{names}; driver {gpu.get('driver_version')}, CUDA driver {gpu.get('cuda_driver_version')}"
    return f"{gpu.get('status')} ({gpu.get('reason')})"


def _runtime_line(runtime: Optional[dict[str, Any]]) -> str:
    if runtime is None:
        return "not collected (add --runtime for BLAS, threads and precision flags)"
    libs = [lib for lib in (runtime.get("threadpool") or {}).values() if isinstance(lib, dict)]
    blas = ", ".join(
        f"{lib['internal_api']} {lib.get('version') or ''} ({lib.get('architecture') or '-'}, {lib.get('num_threads')} threads)"
        for lib in libs if lib.get("user_api") == "blas"
    )
    blas = f"BLAS {blas}" if blas else "no BLAS library loaded"
    torch = runtime.get("torch") or {}
    if not torch:
        return f"{blas}; torch: {runtime.get('torch_error')}"
    return f"{blas}; torch CPU capability {torch.get('cpu_capability')}, {torch.get('num_threads')} threads"
