#!/usr/bin/env bash
# Rebuild the SynthFashion pipeline shipped in src/armani/pretrained/synthfashion (about 80
# minutes on a 2-core CPU; every stage uses its CPU preset). Run from the repository root
# with the package installed; WORK (default runs/shipped) holds the data and the runs.
set -euo pipefail
W=${WORK:-runs/shipped}
mkdir -p "$W"
armani data synth --out "$W/d10k" --n 10000 --size 64 --seed 0
armani train segmenter --data "$W/d10k" --out "$W/seg"
armani train maskclip --data "$W/d10k" --out "$W/mc"
armani train vqgan --data "$W/d10k" --maskclip "$W/mc" --segmenter "$W/seg" --out "$W/vq"
armani train sketch-vq --data "$W/d10k" --out "$W/sk"
armani tokenize --model "$W/vq" --sketch-vq "$W/sk" --data "$W/d10k" --out "$W/tokens"
armani train transformer --tokens "$W/tokens" --out "$W/gpt"
armani export --model "$W/gpt" --out src/armani/pretrained/synthfashion --half \
  --note "SynthFashion 10,000 images at 64 px (seed 0); every stage its CPU preset; made by scripts/make_shipped_model.sh"
