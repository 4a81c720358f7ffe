"""SynthFashion rendering speed: images written per second, end to end (render, PNG
encode, write, index, tokenizer).

    python benchmarks/synth.py [--n64 10000] [--n256 1000] [--workers N] [--json PATH]

Target (issue 2): 10,000 images at 64 px in under 60 s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from armani.data.make_synth import write_synth


def run(n: int, size: int, workers: int | None) -> dict:
    tmp = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        write_synth(tmp / "ds", n=n, size=size, seed=0, workers=workers)
        dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"n": n, "size": size, "seconds": round(dt, 2), "images_per_s": round(n / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n64", type=int, default=10000)
    ap.add_argument("--n256", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = {"cpus": os.cpu_count(), "runs": [run(args.n64, 64, args.workers), run(args.n256, 256, args.workers)]}
    for r in results["runs"]:
        print(f"{r['n']:>6} images at {r['size']:>3} px: {r['seconds']:7.2f} s  ({r['images_per_s']:.0f} img/s)")
    r64 = results["runs"][0]
    est = 10000 / r64["images_per_s"]
    print(f"10,000 images at 64 px: {est:.1f} s (target < 60 s: {'met' if est < 60 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
