"""Stats record of a ~1B decoder (benchmarks/llm_target.py:build_1b) against its plain forward.

The workload is generation-style: one prefill of ``PROMPT_TOKENS`` tokens and
``NEW_TOKENS - 1`` greedy decode steps through the KV cache, so the causal LM runs
``NEW_TOKENS`` times per forward. Weights are random (seeded), built from a
LlamaConfig of TinyLlama-1.1B's shape; nothing is downloaded. Each measurement runs in a
fresh subprocess (the model takes ~4.4 GB; peak RSS is per process):

1. ``timing``: plain forwards and stats-capture forwards (hooks, stats, sketches,
   samples and the shard writer, one capture session per forward as ``record()`` runs
   them), interleaved, median of ``--reps``. Ratio target <= 1.25. Run ``--timing-runs``
   times (the machine is shared).
2. ``plain``: peak RSS of plain forwards; the activation size of one call (the bytes
   of every module output of the largest call, the prefill, measured by hooks that
   keep nothing), and the weights' bytes.
3. ``record``: ``parity.records.record()`` at stats capture on ``--prompts`` prompts
   (batch 1), the environment snapshot and weight hashing included: its time, its peak
   RSS, and the record's size per layer entry and per decoder layer.
   Target: peak RSS <= weights + one call's activations + 256 MB over the process's RSS
   before the model was built (interpreter, torch and transformers).

    .venv/bin/python benchmarks/llm_record.py [--reps 3] [--timing-runs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MB = 1 << 20
PROMPTS = ["The quick brown fox jumps over the lazy dog.", "parity proves the model is the same model.",
           "Big models in bounded memory.", "A decoder with a KV cache."]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _build(shape: str) -> tuple[Any, Any, dict[str, int]]:
    import torch  # noqa: F401  (the baseline: what any process running this model has loaded)
    import transformers.models.llama.modeling_llama  # noqa: F401

    import llm_target
    import parity.records  # noqa: F401

    before = _rss()
    pipe = getattr(llm_target, f"build_{shape}")()
    info = {"rss_before_model": before, "rss_after_model": _rss(),
            "weight_bytes": sum(p.numel() * p.element_size() for p in pipe.model.parameters()),
            "parameters": sum(p.numel() for p in pipe.model.parameters())}
    return pipe, pipe.preprocess(PROMPTS[:1]), info


def child_timing(shape: str, reps: int) -> dict[str, Any]:
    import torch

    from parity.records.capture import LayerCapture
    from parity.records.writer import ShardWriter

    pipe, x, info = _build(shape)
    plain: list[float] = []
    stats: list[float] = []
    plain_cpu: list[float] = []
    stats_cpu: list[float] = []
    with torch.no_grad():
        pipe.call_model(x)  # warm-up
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            pipe.call_model(x)
            plain.append(time.perf_counter() - t)
            plain_cpu.append(time.process_time() - c)
            with tempfile.TemporaryDirectory() as tmp:
                t, c = time.perf_counter(), time.process_time()
                writer = ShardWriter(Path(tmp), "activations", direct=False)
                with LayerCapture(pipe.model, "stats", writer) as hooks:
                    pipe.call_model(x)
                writer.close()
                stats.append(time.perf_counter() - t)
                stats_cpu.append(time.process_time() - c)
    # CPU seconds of this process (all its threads): steadier than wall time on a shared machine
    return {**info, "plain_s": plain, "stats_s": stats, "plain_cpu_s": plain_cpu, "stats_cpu_s": stats_cpu,
            "entries": len(hooks.entries), "ratio": statistics.median(stats) / statistics.median(plain),
            "ratio_cpu": statistics.median(stats_cpu) / statistics.median(plain_cpu)}


def child_plain(shape: str, reps: int) -> dict[str, Any]:
    import torch

    pipe, x, info = _build(shape)
    with torch.no_grad():
        for _ in range(reps):
            pipe.call_model(x)
    peak = _peak()
    calls: list[int] = []

    def count(module: Any, args: Any, out: Any) -> None:
        from parity.records.flatten import flatten

        calls[-1] += sum(v.numel() * v.element_size() for _p, v in flatten(out) if isinstance(v, torch.Tensor))

    def start(module: Any, args: Any, kwargs: Any) -> None:
        calls.append(0)

    lm = pipe.model.lm
    handles = [lm.register_forward_pre_hook(start, with_kwargs=True)]
    handles += [m.register_forward_hook(count) for m in pipe.model.modules()]
    with torch.no_grad():
        pipe.call_model(x)
    for h in handles:
        h.remove()
    return {**info, "peak_rss": peak, "activation_bytes_per_call": calls, "largest_call_bytes": max(calls)}


def child_record(shape: str, prompts: int) -> dict[str, Any]:
    from parity.records import read_record, record
    from parity.target import LoadedTarget

    pipe, _x, info = _build(shape)
    loaded = LoadedTarget(pipeline=pipe, spec=f"benchmarks/llm_target.py:build_{shape}", kind="callable",
                          load_seconds=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rec"
        t = time.perf_counter()
        result = record(loaded, inputs=(PROMPTS * prompts)[:prompts], out=out, batch_size=1)
        seconds = time.perf_counter() - t
        peak = _peak()
        rec = read_record(out)
        files = rec.manifest["files"]
        layer_bytes = sum(int(f["size"]) for name, f in files.items()
                          if name == "layers.json" or name.startswith("activations/"))
        entries = rec.layers
        per_block: dict[str, int] = {}
        for e in entries:
            parts = str(e["module"]).split(".")
            if parts[:3] == ["lm", "model", "layers"] and len(parts) > 3:
                per_block[parts[3]] = per_block.get(parts[3], 0) + len(json.dumps(e)) + (256 if e.get("shard") else 0)
    return {**info, "record_s": seconds, "peak_rss": peak, "batches": result.batches,
            "record_bytes": sum(int(f["size"]) for f in files.values()), "layer_bytes": layer_bytes,
            "layer_entries": len(entries), "layer_keys": result.layers,
            "bytes_per_entry": layer_bytes / max(1, len(entries)),
            "bytes_per_decoder_layer_per_batch": statistics.mean(per_block.values()) / result.batches if per_block
            else None,
            "timings": rec.manifest.get("timings")}


def _run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--shape", args.shape, "--reps", str(args.reps),
           "--prompts", str(args.prompts)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="1b", choices=["1b", "tiny"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timing-runs", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=["timing", "plain", "record"])
    ap.add_argument("--timing-only", action="store_true", help="only the timing runs")
    args = ap.parse_args()
    if args.child:
        fn = {"timing": lambda: child_timing(args.shape, args.reps), "plain": lambda: child_plain(args.shape, args.reps),
              "record": lambda: child_record(args.shape, args.prompts)}[args.child]
        print(json.dumps(fn()))
        return
    report: dict[str, Any] = {"timing": [_run_child("timing", args) for _ in range(args.timing_runs)]}
    if not args.timing_only:
        report.update(plain=_run_child("plain", args), record=_run_child("record", args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _show(report)


def _show(r: dict[str, Any]) -> None:
    for i, t in enumerate(r["timing"], 1):
        print(f"timing run {i}: plain forward {statistics.median(t['plain_s']):.2f} s wall, "
              f"{statistics.median(t['plain_cpu_s']):.2f} s CPU; stats capture {statistics.median(t['stats_s']):.2f} s "
              f"wall, {statistics.median(t['stats_cpu_s']):.2f} s CPU -> {t['ratio']:.3f}x wall, "
              f"{t['ratio_cpu']:.3f}x CPU ({t['entries']} entries per forward)")
    if "plain" not in r:
        return
    plain, rec = r["plain"], r["record"]
    print(f"model: {plain['parameters'] / 1e9:.2f} B parameters, weights {plain['weight_bytes'] / MB:.0f} MB")
    act = plain["largest_call_bytes"]
    base = rec["rss_before_model"]
    budget = plain["weight_bytes"] + act + 256 * MB
    print(f"one call's activations (prefill, every module output): {act / MB:.1f} MB; per call "
          f"{[round(c / MB, 1) for c in plain['activation_bytes_per_call']]} MB")
    print(f"peak RSS over the pre-model baseline ({base / MB:.0f} MB): plain {(plain['peak_rss'] - base) / MB:.0f} MB, "
          f"record {(rec['peak_rss'] - base) / MB:.0f} MB; budget weights + activations + 256 MB = "
          f"{budget / MB:.0f} MB -> {'within' if rec['peak_rss'] - base <= budget else 'OVER'}")
    print(f"record(): {rec['record_s']:.1f} s for {rec['batches']} batches (timings {rec['timings']}); "
          f"{rec['record_bytes'] / MB:.2f} MB, {rec['layer_entries']} layer entries ({rec['layer_keys']} keys), "
          f"{rec['bytes_per_entry']:.0f} B per entry, {rec['bytes_per_decoder_layer_per_batch'] / 1e3:.1f} kB per "
          "decoder layer per batch")


if __name__ == "__main__":
    main()
