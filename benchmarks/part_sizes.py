"""How large each part is in SynthFashion: share of images that hold it and its mean share
of the garment's pixels where present (renders in memory, writes nothing).

    python benchmarks/part_sizes.py [--n 2000] [--size 64] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np

from armani.data.synth import make_sample
from armani.labels import LABELS, NUM_LABELS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    share, present = np.zeros(NUM_LABELS), np.zeros(NUM_LABELS)
    for i in range(args.n):
        counts = np.bincount(make_sample(args.seed, i, args.size)["mask"].ravel(), minlength=NUM_LABELS)
        garment = max(counts[1:].sum(), 1)
        share += counts / garment
        present += counts > 0
    print(f"{'label':10s} {'in images':>10s} {'share of garment where present':>32s}")
    for k in range(1, NUM_LABELS):
        print(f"{LABELS[k]:10s} {present[k] / args.n:10.1%} {share[k] / max(present[k], 1):32.3f}")


if __name__ == "__main__":
    main()
