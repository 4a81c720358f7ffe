"""bf16 autocast against fp32 for the quickstart's training steps on this CPU, side by side.

    python benchmarks/cpu_bf16.py --quickstart runs/quickstart [--rounds 2]

A quickstart folder (run from the folder its token folder was made in, since the tokens
record the stage-1 model's path relative to it) gives the data, the frozen parents and the
stage configs. Each round times, alternately, fp32 then bf16: 16 VQGAN steps and 12
Transformer steps, on fixed batches of the quickstart's own data, from the same seeded
weights. Prints milliseconds per step; nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader


def per_step_ms(task, batches, steps: int, bf16: bool, channels_last: bool = False) -> float:
    torch.manual_seed(0)
    model = task.build_model()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(i: int) -> None:
        task.step = i
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = task.compute_loss(model, batches[i % len(batches)])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    step(1)
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    return (time.perf_counter() - t0) / steps * 1000


def main() -> None:
    from armani.train.stage1 import vqgan_task
    from armani.train.stage2 import transformer_task
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quickstart", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    q = args.quickstart
    vq, _ = vqgan_task(q / "data", q / "configs" / "vqgan.json", maskclip=q / "runs" / "maskclip",
                       segmenter=q / "runs" / "segmenter")
    tf, tcfg = transformer_task(q / "tokens", q / "configs" / "transformer.json")
    stages = {"vqgan": (vq, 16, 16, True), "transformer": (tf, tcfg.batch_size, 12, False)}
    report = {}
    for name, (task, batch, steps, cl) in stages.items():
        dl = DataLoader(task.train_dataset(), batch_size=batch, shuffle=True, num_workers=0, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
        batches = [b for _, b in zip(range(8), dl)]
        rows = {"fp32": [], "bf16": []}
        for _ in range(args.rounds):
            for label, bf16 in (("fp32", False), ("bf16", True)):
                rows[label].append(round(per_step_ms(task, batches, steps, bf16, cl)))
        report[name] = rows
        print(f"{name:12s} ms per step  fp32 {rows['fp32']}  bf16 {rows['bf16']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
