"""Does stage 1 keep a garment's category? The packaged judge on stage-1 reconstructions.

    python benchmarks/recon_category.py MODEL DATA [--vqgan RUN ...] [--n 200] [--json OUT]

MODEL: a pipeline folder (its caption tokenizer and text length encode the captions that a
fused codebook needs); DATA: a SynthFashion dataset whose `val` split gives the garments (the
first `n`). For MODEL's own stage 1, and for each stage-1 run or bundle given with `--vqgan`
in its place, it prints the share of reconstructions whose category the judge reads as the
caption's garment, with the caption fused and without, their mean PSNR, and the commonest
confusions. Text-only samples cannot be read as their category more often than the
reconstructions are: this is the ceiling of the quickstart's `category_accuracy`. Nothing
here asserts a figure.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from armani.cli.common import write_json
from armani.data.vocab import CATEGORIES
from armani.eval.fidelity import reconstructions
from armani.eval.generation import load_prompts
from armani.eval.judge import Judge, shipped_judge
from armani.eval.recon import psnr
from armani.inference.image_tokens import load_image_tokenizer
from armani.inference.pipeline import load


def measure(g, prompts, judge) -> dict:
    real = torch.from_numpy(np.stack([p.image for p in prompts])) / 255.0
    truth = np.array([CATEGORIES.index(p.attributes["category"]) for p in prompts])
    out = {}
    for fuse in (True, False):
        rec = reconstructions(g, prompts, fuse=fuse)
        read = judge.read(rec)["category"]
        key = "fused" if fuse else "plain"
        out[key] = {"category": float((read == truth).mean()),
                    "psnr": float(psnr(torch.from_numpy(rec) / 255.0, real).mean())}
        if fuse:
            out["confusions"] = collections.Counter(
                f"{CATEGORIES[a]} as {CATEGORIES[b]}" for a, b in zip(truth, read) if a != b).most_common(6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--vqgan", action="append", default=[], help="a stage-1 run or bundle to measure instead")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    g = load(a.model, "cpu")
    prompts = [p for p in load_prompts(a.data, "val", a.n, g.image_size) if p.attributes.get("category")]
    judge = Judge(shipped_judge(), "cpu")
    results = {}
    for name in [None, *a.vqgan]:
        if name is not None:
            g.image_tokenizer = load_image_tokenizer(name)
        r = results[name or a.model] = measure(g, prompts, judge)
        print(f"{name or a.model}: category {r['fused']['category']:.1%} fused, {r['plain']['category']:.1%} plain; "
              f"PSNR {r['fused']['psnr']:.2f} / {r['plain']['psnr']:.2f} dB; "
              + ", ".join(f"{k} {v}" for k, v in r["confusions"]), flush=True)
    print(f"{len(prompts)} val garments of {a.data}")
    write_json(a.json, results)


if __name__ == "__main__":
    main()
