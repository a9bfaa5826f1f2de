"""Record to and verify from an S3-compatible bucket vs a local folder: wall time and peak RSS.

The server is moto's standalone S3 server on 127.0.0.1 (tests/s3_server.py), a
single-process Python server keeping objects in memory: its ingest rate, not S3's, bounds
the upload and download figures. The model is one Linear(256, 10240) fed 12 batches of
1024 rows at ``--capture full``: a 1.0 GB record in 64 MB shards. Each command runs as a
fresh ``python -m parity`` process; its peak RSS is getrusage's ru_maxrss.

    .venv/bin/python benchmarks/object_storage.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from s3_server import s3_server  # noqa: E402

WIDE = """import torch
from parity.target import Pipeline


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 10240)).eval()
    torch.manual_seed(1)
    return Pipeline(model=model, example_inputs=[torch.randn(1024, 256) for _ in range(12)], batch_size=1)
"""
# Runs parity as `python -m parity` would, then reports the process's peak RSS on stderr.
RUNNER = ("import resource, runpy, sys\nsys.argv = ['parity', *sys.argv[1:]]\ntry:\n"
          "    runpy.run_module('parity', run_name='__main__')\nfinally:\n"
          "    sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, object]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"parity {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    rss_kb = max(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS"))
    return {"command": "parity " + " ".join(args), "wall_s": round(wall, 1), "peak_rss_gb": round(rss_kb / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    opts = parser.parse_args()
    server = s3_server()
    with tempfile.TemporaryDirectory(prefix="parity-bench-s3-") as tmp:
        work = Path(tmp)
        (work / "wide.py").write_text(WIDE)
        env = dict(os.environ, **server.env(XDG_CACHE_HOME=str(work / "cache")))
        url = server.prefix("bench")
        rows = [
            run(["record", "wide.py:build", "-o", "local", "--capture", "full"], work, env),
            run(["record", "wide.py:build", "-o", url, "--capture", "full"], work, env),
            {**run(["verify", url, "wide.py:build"], work, env), "note": "cold cache"},
            {**run(["verify", url, "wide.py:build"], work, env), "note": "warm cache"},
            run(["verify", "local", "wide.py:build"], work, env),
        ]
    if opts.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print(f"{row['wall_s']:>7} s {row['peak_rss_gb']:>6} GB  {row['command']}  {row.get('note', '')}")


if __name__ == "__main__":
    main()
