"""A token folder as a training set for stage 2: per-sample caption choice and condition
dropout.

Each sample keeps its caption, sketch and partial image independently with the
probabilities of `ConditionDropout` (stage 2's loss config carries the same fields); an
absent condition becomes EMPTY tokens. One model so serves text, text+sketch, text+partial,
sketch-only and partial-only generation, and the samples with no condition at all train the
unconditional model guidance needs. Every random choice (caption, which conditions, the
partial box) is a function of (seed, epoch, index), so resuming replays the same stream.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..formats.tokens import TokenSet


@dataclass(frozen=True)
class ConditionDropout:
    p_text: float = 0.8             # probability that a training sample keeps its caption
    p_sketch: float = 0.4           # ... its sketch
    p_partial: float = 0.4          # ... a partial image (a box of image tokens)
    partial_keep: float = 0.25      # share of the token grid the partial box keeps (appendix A)


def token_box(rng: np.random.Generator, grid: int, keep: float) -> np.ndarray:
    """A random box of token cells covering about `keep` of a grid x grid map -> (grid*grid,) bool."""
    area = max(1, round(keep * grid * grid))
    w = int(rng.integers(max(1, -(-area // grid)), min(grid, area) + 1))
    h = max(1, min(grid, round(area / w)))
    x0, y0 = int(rng.integers(0, grid - w + 1)), int(rng.integers(0, grid - h + 1))
    cells = np.zeros((grid, grid), bool)
    cells[y0:y0 + h, x0:x0 + w] = True
    return cells.reshape(-1)


class TokenDataset(Dataset):
    """One split of a token folder, with per-sample caption choice and condition dropout."""

    def __init__(self, root: str | os.PathLike, split: str, probs: ConditionDropout | None = None, seed: int = 0,
                 dropout: bool = True):
        self.tokens = TokenSet(root, split)
        self.loss, self.seed, self.epoch, self.dropout = probs or ConditionDropout(), seed, 0, dropout
        self.grid = int(self.tokens.info["image_grid"])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        t, lc = self.tokens, self.loss
        rng = np.random.default_rng([self.seed, self.epoch, i, 2])
        slots = np.flatnonzero(t.text_len[i] > 0)
        c = int(rng.choice(slots)) if (self.dropout and len(slots)) else (int(slots[0]) if len(slots) else 0)
        u = rng.random(3)
        has_sketch = t.sketch is not None
        sketch = t.sketch[i].astype(np.int64) if has_sketch else np.zeros(0, np.int64)
        return {
            "image": torch.from_numpy(t.image[i].astype(np.int64)),
            "sketch": torch.from_numpy(sketch),
            "text": torch.from_numpy(t.text[i, c].astype(np.int64)),
            "text_len": torch.tensor(int(t.text_len[i, c])),
            "keep": torch.from_numpy(token_box(rng, self.grid, lc.partial_keep)),
            "has_text": torch.tensor(bool(len(slots)) and (not self.dropout or u[0] < lc.p_text)),
            "has_sketch": torch.tensor(has_sketch and (not self.dropout or u[1] < lc.p_sketch)),
            "has_partial": torch.tensor(bool(not self.dropout or u[2] < lc.p_partial)),
        }


def conditions(model_cfg, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch's condition tokens for a Transformer of config `model_cfg`, absent ones EMPTY."""
    c = model_cfg
    text = torch.where(batch["has_text"][:, None], batch["text"], c.text_empty)
    b = text.shape[0]
    if batch["sketch"].shape[-1] == c.sketch_len:
        sketch = torch.where(batch["has_sketch"][:, None], batch["sketch"], c.sketch_empty)
    else:
        sketch = torch.full((b, c.sketch_len), c.sketch_empty, dtype=torch.long, device=text.device)
    kept = batch["keep"] & batch["has_partial"][:, None]
    partial = torch.where(kept, batch["image"], c.image_empty)
    return text, sketch, partial
