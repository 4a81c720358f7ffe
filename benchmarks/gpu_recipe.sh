#!/usr/bin/env bash
# A whole recipe on a lent GPU, in one run (from the repository root; results go to $OUT):
#   bash benchmarks/gpu_recipe.sh quickstart   # issue 15: `armani quickstart`, which picks the
#                                              # `gpu` profile on CUDA (128 px, 16 x 16 tokens)
#   bash benchmarks/gpu_recipe.sh experiment   # issue 14: `armani experiment paper --preset gpu`
# Both are sized for <= 10 minutes on one H100 (from FLOP counts and CPU step times, not yet
# timed). The run resumes where it stopped, so a cut-off run still returns every stage it
# finished (summary.json: seconds and metrics per stage).
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
case "${1:-}" in
  quickstart) RUN=${RUN:-/tmp/quickstart-gpu}; CMD=(quickstart --out "$RUN")
              KEEP=(summary.json recon.png generate_text.png) ;;
  experiment) RUN=${RUN:-/tmp/experiment-gpu}; CMD=(-q experiment paper --preset gpu --out "$RUN")
              KEEP=(summary.json results.json table.md) ;;
  *) echo "usage: bash benchmarks/gpu_recipe.sh quickstart|experiment" >&2; exit 2 ;;
esac
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/device.txt"
start=$(date +%s)
timeout "${LIMIT:-560}" python3 -m armani "${CMD[@]}" > "$OUT/$1.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/$1.log"
for f in "${KEEP[@]}"; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"; done
tail -5 "$OUT/$1.log"
echo "GPU-RECIPE-DONE $1"
