#!/usr/bin/env bash
# Issue 15's GPU quickstart on a lent GPU, in one run (from the repository root; results go
# to $OUT): `armani quickstart`, which picks the `gpu` profile when it sees a CUDA device
# (128 px, 16 x 16 tokens), sized for <= 10 minutes on one H100 from FLOP counts. The run
# resumes where it stopped, so a cut-off run still returns every stage it finished
# (summary.json: seconds and metrics per stage, to compare with the CPU profile's).
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
RUN=${RUN:-/tmp/quickstart-gpu}
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/device.txt"
start=$(date +%s)
timeout "${LIMIT:-580}" python3 -m armani quickstart --out "$RUN" > "$OUT/quickstart.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/quickstart.log"
for f in summary.json recon.png generate_text.png; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"; done
tail -5 "$OUT/quickstart.log"
echo GPU-QUICKSTART-DONE
