"""Stage-2 held-out likelihood: the mean negative log-likelihood per image token (nats) of a
token split under several condition sets. Lower with a condition than without it means the
model uses that condition."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from ..data.tokens import TokenDataset, conditions
from ..formats.pipeline import load_model

CONDITION_SETS = {"none": (False, False, False), "text": (True, False, False),
                  "text+sketch": (True, True, False), "text+partial": (True, False, True)}


@torch.no_grad()
def evaluate_nll(model: str | os.PathLike, tokens: str | os.PathLike, split: str = "val",
                 max_samples: int | None = 256, batch_size: int = 32) -> dict:
    b = load_model(model, "transformer")
    m, cfg = b.model, b.model.cfg
    ds = TokenDataset(tokens, split, seed=0, dropout=False)
    n = min(len(ds), max_samples or len(ds))
    sums = {k: 0.0 for k in CONDITION_SETS}
    for start in range(0, n, batch_size):
        items = [ds[i] for i in range(start, min(n, start + batch_size))]
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        for name, (t, s, p) in CONDITION_SETS.items():
            k = len(items)
            flags = {"has_text": torch.full((k,), t), "has_sketch": torch.full((k,), s),
                     "has_partial": torch.full((k,), p)}
            text, sketch, partial = conditions(cfg, {**batch, **flags})
            logits = m(text, sketch, partial, batch["image"])
            sums[name] += float(F.cross_entropy(logits.flatten(0, 1), batch["image"].flatten(), reduction="sum"))
    per_token = {k: v / (n * cfg.image_len) for k, v in sums.items()}
    return {"split": split, "samples": n, "nll_per_token": per_token}
