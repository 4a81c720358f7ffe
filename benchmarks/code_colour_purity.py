"""How much of a garment's colour one stage-1 code carries, on a quickstart folder.

    python benchmarks/code_colour_purity.py runs/quickstart

For every code of the token folder's train split, the garment colours of the solid garments
whose tokens use it (the three commonest codes, the backdrop, left out). A code's purity is
the share of its uses that fall on its commonest colour; the figure printed is the mean
purity weighted by use (1: every code belongs to one colour; 1/13 for codes used evenly by
all 13), and per colour, how pure the codes of that colour's garments are on average. Low
purity means a garment's colour is carried by the combination of codes and the decoder's
context rather than by each code, so sampled tokens of neighbouring colours blend.
Reads the folder only; nothing is trained.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from armani.eval.colour import NAMES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("quickstart", type=Path, help="a quickstart folder (data/ and tokens/)")
    a = ap.parse_args()
    tok = np.load(a.quickstart / "tokens" / "train.image.npy").astype(np.int64)
    with open(a.quickstart / "data" / "index.jsonl") as f:
        recs = [r for r in map(json.loads, f) if r["split"] == "train"]
    if len(recs) != len(tok):
        raise SystemExit("the token folder and the dataset's train split differ in size")
    hist = np.zeros((int(tok.max()) + 1, len(NAMES)))
    for ids, r in zip(tok, recs):
        if r["attributes"]["pattern"] == "solid":
            np.add.at(hist[:, NAMES.index(r["attributes"]["color"])], ids, 1)
    hist[np.argsort(-hist.sum(1))[:3]] = 0  # the backdrop's codes
    uses = hist.sum(1)
    purity = hist.max(1) / np.maximum(uses, 1)
    print(f"{a.quickstart}: {int((uses > 0).sum())} codes on solid garments, use-weighted purity "
          f"{(purity * uses).sum() / uses.sum():.3f}")
    share = hist / np.maximum(uses, 1)[:, None]
    print("per colour: " + ", ".join(f"{n} {(hist[:, c] * share[:, c]).sum() / hist[:, c].sum():.2f}"
                                     for c, n in enumerate(NAMES)))


if __name__ == "__main__":
    main()
