#!/usr/bin/env bash
# Rebuild the SynthFashion attribute judge shipped in src/armani/pretrained/judge (about 15
# minutes on a 2-core CPU). It trains on its own render (seed 7), so it has seen none of the
# garments of the quickstart or of the shipped model (seed 0), whose samples it reads. Run
# from the repository root with the package installed; WORK (default runs/judge) holds the
# data and the run.
set -euo pipefail
W=${WORK:-runs/judge}
OUT=src/armani/pretrained/judge
mkdir -p "$W" "$OUT"
armani data synth --out "$W/d10k-seed7" --n 10000 --size 64 --seed 7
armani train judge --data "$W/d10k-seed7" --out "$W/judge" --max-steps 8000 --max-minutes 60
# float16 weights (half the size; loaded back as float32), the config as trained
python - "$W/judge/model" "$OUT" <<'PY'
import shutil, sys
from safetensors.torch import load_file, save_file
src, out = sys.argv[1], sys.argv[2]
state = load_file(f"{src}/model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, f"{out}/model.safetensors")
shutil.copy(f"{src}/config.json", f"{out}/config.json")
PY
# what it reads on real images of the quickstart's render (its test and val splits)
armani data synth --out "$W/d4k-seed0" --n 4000 --size 64 --seed 0
armani eval judge --model "$OUT" --data "$W/d4k-seed0" --split test
armani eval judge --model "$OUT" --data "$W/d4k-seed0" --split val
