"""How well the pixel colour reader (`armani.eval.colour.main_colour`, the judge of
`armani eval colours` and the quickstart's colour check) names the main colour of real
SynthFashion renders, per pattern, with the garment pixels found from the backdrop (as on
generated images) and with the true mask (renders in memory, writes nothing).

    python benchmarks/colour_judge.py [--n 1500] [--size 64] [--seed 0]
"""
from __future__ import annotations

import argparse
from collections import Counter

from armani.data.synth import make_sample
from armani.eval.colour import main_colour


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    total, found, masked, wrong = Counter(), Counter(), Counter(), Counter()
    for i in range(args.n):
        s = make_sample(args.seed, i, args.size)
        a = s["attributes"]
        p = a["pattern"]
        total[p] += 1
        got = main_colour(s["image"])
        found[p] += got == a["color"]
        masked[p] += main_colour(s["image"], s["mask"] > 0) == a["color"]
        if got != a["color"] and p == "solid":
            wrong[f"{a['color']} -> {got}"] += 1
    print(f"{'pattern':8s} {'images':>6s} {'backdrop pixels':>16s} {'true mask':>10s}")
    for p in sorted(total, key=lambda k: -total[k]):
        print(f"{p:8s} {total[p]:6d} {found[p] / total[p]:16.1%} {masked[p] / total[p]:10.1%}")
    print("solid garments named wrongly:", dict(wrong) or "none")


if __name__ == "__main__":
    main()
