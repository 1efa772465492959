#!/usr/bin/env bash
# The GPU checks of issue 10 in one script (a few minutes on one GPU; nothing here ran on a GPU yet).
#   1. the CUDA tests: every loss on CUDA equals the CPU (values, gradients), distance maps, a 3-D
#      bench on CUDA (in-process and with Ray sharing the GPU)
#   2. a short `seglosses bench --device cuda` on a built-in task in 3-D
#   3. the loss speed benchmark on CUDA next to MONAI
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (run from the repository root)
set -euo pipefail
OUT="${1:-gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
"$PY" -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tee "$OUT/test_cuda.txt"
"$PY" -m seglosses.cli bench --tasks liver --losses ce,dice,dice_ce,iou --spatial-dims 3 --device cuda \
    --iterations 50 --epoch-length 25 --workers 1 --out "$OUT/bench3d" --no-report --quiet 2>&1 | tee "$OUT/bench3d.txt"
"$PY" benchmarks/losses.py --device cuda --repeats 5 --csv "$OUT/losses_cuda.csv" 2>&1 | tee "$OUT/losses_cuda.txt"
