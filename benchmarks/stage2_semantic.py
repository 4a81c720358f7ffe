"""What the stage-2 semantic loss (eq. 14) costs: training steps with and without it, side by side.

    python benchmarks/stage2_semantic.py --tokens TOKENS [--steps 6] [--json out.json]

TOKENS is a token folder from `armani tokenize` whose stage-1 model records its segmenter and
MaskCLIP (the semantic loss decodes tokens with the frozen decoder and scores them with
them). Rows: no semantic loss; the teacher-forced softmax mix (the earlier form); sampled
tokens of a partly free-running pass with 1 and 2 passes (the CPU preset: 2), each on 8
captioned samples of the batch, on every step. Same model, batch and data for every row;
the first round is a warm-up; the rows run in turn and each reports its median step time.
Gradient-share probes are off here (they cost two extra backward passes when they run).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.data import DataLoader

from armani.train.stage2 import transformer_task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    task, cfg = transformer_task(args.tokens)
    batch = next(iter(DataLoader(task.train_dataset(), batch_size=cfg.batch_size)))
    configs = {"off": {"semantic_every": 0},
               "teacher mix, 8 samples": {"semantic_input": "teacher"},
               "sampled, 1 pass, 8": {"semantic_input": "sampled", "semantic_passes": 1},
               "sampled, 2 passes, 8": {"semantic_input": "sampled", "semantic_passes": 2}}
    state = {}
    for name in configs:
        torch.manual_seed(0)
        model = task.build_model()
        state[name] = (model, torch.optim.AdamW(model.parameters(), 1e-4))
    times: dict[str, list[float]] = {name: [] for name in configs}
    for step in range(args.steps + 1):  # round robin, so drift in machine speed hits every row alike
        for name, over in configs.items():
            task.loss_cfg = replace(task.loss_cfg, **{"semantic_every": 1, "semantic_batch": 8, "probe_every": 0,
                                                      **over})
            model, opt = state[name]
            t0 = time.perf_counter()
            loss = task.compute_loss(model, batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step:  # the first round is a warm-up
                times[name].append(time.perf_counter() - t0)
    rows = {name: statistics.median(t) for name, t in times.items()}
    base = rows["off"]
    print(f"stage-2 training step, batch {cfg.batch_size}, CPU preset model ({torch.get_num_threads()} threads)")
    for name, t in rows.items():
        print(f"{name:24s} {t * 1000:8.0f} ms/step  {t / base:5.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": cfg.batch_size, "seconds_per_step": rows,
                       "ratio": {k: v / base for k, v in rows.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
