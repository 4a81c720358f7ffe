"""Does each generation mode follow its condition? The `eval.fidelity` figures of one model
in all five modes, with partial images kept exactly and softly.

    python benchmarks/mode_fidelity.py MODEL DATA [--n 48] [--samples 2] [--seed 0] [--json OUT]

MODEL: a pipeline folder (or anything `armani.load` takes); DATA: a dataset whose `val`
split gives the garments (the first `n`). The figures are those `armani eval generate --mode
M --n N --samples S --seed SEED` writes under `fidelity` (the same seed and prompts); this runs
the five modes, and the two partial modes again with `keep` "soft", in one go and prints a
table. Nothing here asserts a figure.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

from armani.cli.common import write_json
from armani.eval.fidelity import FIDELITY
from armani.eval.generation import fidelity_by_mode
from armani.inference.pipeline import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    g = load(a.model)
    out = {}
    for keep, modes in (("exact", None), ("soft", ("text+partial", "partial"))):
        g.sampling = replace(g.sampling, keep=keep)
        t = time.perf_counter()
        out[keep] = fidelity_by_mode(g, a.data, modes=modes, n=a.n, samples=a.samples, seed=a.seed)
        print(f"keep {keep} ({time.perf_counter() - t:.1f} s); figure (ceiling); category: {out[keep]['category_judge']}")
        for mode, r in out[keep]["modes"].items():
            cells = [f"{k} {r[k]:.3f} ({r['ceiling'][k]:.3f})" for k in FIDELITY if r[k] is not None]
            print(f"  {mode:13s} " + ", ".join(cells))
    write_json(a.json, out)


if __name__ == "__main__":
    main()
