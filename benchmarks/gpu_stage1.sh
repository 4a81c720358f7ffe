#!/usr/bin/env bash
# Stage-1 checks on a GPU machine (run from the repository root; writes JSON to $OUT):
# the CLI path from data to tokens with CUDA and bf16, and the paper presets' step cost.
set -euo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; D=$(mktemp -d); mkdir -p "$OUT"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
echo '{"loss": {"disc_start": 10}, "train": {"mixed_precision": "bf16", "log_every": 5}}' > "$D/vq.json"
A="python3 -m armani -q"
$A data synth --out "$D/data" --n 800 --size 64 --workers 8
$A train segmenter --data "$D/data" --out "$D/seg" --max-steps 40
$A train maskclip --data "$D/data" --out "$D/mc" --max-steps 40
$A train vqgan --data "$D/data" --maskclip "$D/mc" --segmenter "$D/seg" --out "$D/vq" --max-steps 40 --config "$D/vq.json"
$A train sketch-vq --data "$D/data" --out "$D/sk" --max-steps 40
$A tokenize --model "$D/vq" --sketch-vq "$D/sk" --data "$D/data" --out "$D/tok"
$A eval recon --model "$D/vq" --data "$D/data" --json "$OUT/recon.json"
cp "$D/vq/metrics.jsonl" "$OUT/vqgan_metrics.jsonl"
python3 benchmarks/paper_presets.py --steps 10 --batch 8 --json "$OUT/paper_presets.json"
echo GPU-STAGE1-OK
