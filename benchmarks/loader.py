"""Data loading throughput: images per second delivered as training batches (decode,
letterbox, flip, Canny sketch, partial crop, tokenize, collate), at 64 and 256 px with 0
and 2 worker processes, side by side in one run.

    python benchmarks/loader.py [--batch 32] [--batches 30] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from armani.data.dataset import GarmentDataset, make_loader
from armani.data.make_synth import write_synth


def measure(root: Path, size: int, workers: int, batch: int, batches: int) -> float:
    ds = GarmentDataset(root, "train", image_size=size)
    loader = make_loader(ds, batch, workers=workers, seed=0)
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not throughput
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += b["image"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    try:
        for size in (64, 256):
            root = write_synth(tmp / f"s{size}", n=args.batch * (args.batches + 2), size=size, seed=0)
            for workers in (0, 2):
                ips = measure(root, size, workers, args.batch, args.batches)
                rows.append({"size": size, "workers": workers, "images_per_s": round(ips, 1)})
                print(f"{size:>3} px, {workers} workers: {ips:8.1f} img/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for size in (64, 256):
        a, b = (r["images_per_s"] for r in rows if r["size"] == size)
        print(f"{size:>3} px: 2 workers / 0 workers = {b / a:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
