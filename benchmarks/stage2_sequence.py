"""Stage-2 step time against the sequence's shape, side by side in one run.

    python benchmarks/stage2_sequence.py [--rounds 3]

The quickstart's Transformer (width 128, 4 blocks, 4 heads, 64 image tokens of 512 codes,
batch 32) at text blocks of 64 and 48 tokens and sketch grids of 8 x 8 and 4 x 4: one
teacher-forced forward, backward and AdamW step on random token ids, the best of `rounds`
rounds of 5 steps after 3 warm-up steps. Prints milliseconds per step; nothing here asserts
a speed.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from armani.models.transformer import CrossModalTransformer, TransformerConfig


def step_ms(text_len: int, sketch_len: int, rounds: int, batch: int = 32) -> tuple[int, float]:
    torch.manual_seed(0)
    cfg = TransformerConfig(text_vocab=2048, text_len=text_len, sketch_codes=256, sketch_len=sketch_len,
                            image_codes=512, image_len=64, width=128, layers=4, heads=4)
    model = CrossModalTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    text = torch.randint(0, 2048, (batch, text_len))
    sketch = torch.randint(0, 256, (batch, sketch_len))
    partial = torch.randint(0, 512, (batch, 64))
    image = torch.randint(0, 512, (batch, 64))

    def step() -> None:
        loss = F.cross_entropy(model(text, sketch, partial, image).flatten(0, 1), image.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(5):
            step()
        best = min(best, (time.perf_counter() - t0) / 5 * 1000)
    return cfg.seq_len, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for text_len, sketch_len in ((64, 64), (48, 64), (64, 16), (48, 16)):
        seq, ms = step_ms(text_len, sketch_len, a.rounds)
        print(f"text {text_len:2d}, sketch {sketch_len:2d} tokens: {seq} positions, {ms:6.1f} ms per step")


if __name__ == "__main__":
    main()
