#!/usr/bin/env bash
# Issue 15's checks on a lent GPU machine, in one run (from the repository root; JSON and logs
# go to $OUT). About 8-9 minutes on one H100:
#   1. the benchmark at paper size (training eager and compiled; cached sampling, eager and
#      replayed from a CUDA graph; memory);
#   2. the CPU sampling benchmark's ratio, as a control that the run is sane;
#   3. the whole test suite on CUDA (the kill-resume, multi-process and generate tests).
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/device.txt"
timeout 240 python3 benchmarks/gpu.py --json "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.log"
timeout 60 python3 benchmarks/sampling.py --json "$OUT/sampling_cpu_paths.json" > "$OUT/sampling.log" 2>&1
timeout 300 python3 -m pytest -q -p no:cacheprovider -ra tests > "$OUT/pytest.log" 2>&1
tail -15 "$OUT/pytest.log"
echo GPU-RUN-DONE
