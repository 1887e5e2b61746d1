#!/usr/bin/env bash
# Every CUDA path of the project once, with its figures (benchmarks/gpu_check.py: device, rasteriser,
# AMP training, predict FPS n/s, tiny and full-size SDXL, head-mesh conditioning). Run from the
# repository root on a GPU machine, after `make env`. On one H200 every section but train took 6.5 minutes
# (train alone ran past 140 s: docs/gpu.md).
#   benchmarks/gpu_check.sh            # figures on stdout, and in $OUT/gpu_check.json when OUT is set
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
source <("$PY" -c 'from vggheads.offline import OFFLINE_ENV; print("\n".join(f"export {k}={v}" for k, v in OFFLINE_ENV.items()))')
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec "$PY" benchmarks/gpu_check.py --json "${OUT:-.}/gpu_check.json" "$@"
