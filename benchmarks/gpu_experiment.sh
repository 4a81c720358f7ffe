#!/usr/bin/env bash
# Issue 14's experiment on a lent GPU, in one run (from the repository root; results go to
# $OUT): `armani experiment paper --preset gpu`, sized for <= 10 minutes on one H100 from the
# CPU's step times. The run resumes where it stopped, so a cut-off run still returns every
# stage it finished (summary.json: seconds per stage, to rescale the preset).
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
RUN=${RUN:-/tmp/experiment-gpu}
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/device.txt"
start=$(date +%s)
timeout "${LIMIT:-560}" python3 -m armani -q experiment paper --preset gpu --out "$RUN" > "$OUT/experiment.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/experiment.log"
for f in summary.json results.json table.md; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"; done
tail -5 "$OUT/experiment.log"
echo GPU-EXPERIMENT-DONE
