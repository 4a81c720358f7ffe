"""Word-part alignment, measured (the paper shows it only by pictures, Fig. 6).

Pointing accuracy: for every caption word that names a part present in the image, take
the mask token most similar to that word; it is a hit when that token's patch holds
pixels of the part. Chance is the share of the garment's patches that hold the part
(what a random garment patch would score). Retrieval: mask -> caption recall@K.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.tokenizer import CaptionTokenizer
from ..data.transforms import letterbox
from ..data.vocab import PART_WORDS
from ..errors import UserError
from ..formats.dataset import Index
from ..formats.images import read_mask
from ..formats.pipeline import load_model
from ..labels import LABEL_ID, NUM_LABELS
from ..losses.contrastive import token_similarity

_WORD_RE = {label: re.compile(f"^(?:{rx})$".replace(r"\b", "")) for label, rx in PART_WORDS.items()}


def part_of_word(word: str) -> str | None:
    w = word.strip().lower()
    for label, rx in _WORD_RE.items():
        if rx.match(w):
            return label
    return None


def words_with_tokens(tok: CaptionTokenizer, text: str, max_len: int) -> list[tuple[str, list[int]]]:
    """(word, positions in the encoded sequence) for each word of `text` that fits in max_len."""
    enc = tok.tok.encode(text, add_special_tokens=False)
    shift = 1 if tok.bos_id is not None else 0
    groups: dict[int, list[int]] = defaultdict(list)
    spans: dict[int, tuple[int, int]] = {}
    for i, (w, (a, b)) in enumerate(zip(enc.word_ids, enc.offsets)):
        if w is None or i + shift >= max_len - 1:
            continue
        groups[w].append(i + shift)
        lo, hi = spans.get(w, (a, b))
        spans[w] = (min(lo, a), max(hi, b))
    return [(text[spans[w][0]:spans[w][1]], groups[w]) for w in sorted(groups)]


def load_maskclip(path: str | os.PathLike):
    b = load_model(path, "maskclip")
    tok = CaptionTokenizer.of_bundle(b.path)
    return b, tok


def _patch_parts(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, H, W) labels -> (B, K, N) bool: patch n holds pixels of label k."""
    onehot = F.one_hot(masks.long().clamp(max=NUM_LABELS - 1), NUM_LABELS).permute(0, 3, 1, 2).float()
    return (F.max_pool2d(onehot, patch).flatten(2) > 0)


@torch.no_grad()
def evaluate_alignment(model_path: str | os.PathLike, data: str | os.PathLike, split: str = "val",
                       batch_size: int = 64, max_samples: int | None = None, progress=None) -> dict:
    b, tok = load_maskclip(model_path)
    model, cfg = b.model, b.model.cfg
    index = Index(data, split, where=lambda r: bool(r.get("mask")))
    n = len(index) if max_samples is None else min(len(index), max_samples)
    if n == 0:
        raise UserError(f"{data}: no samples with masks in split {split!r}")
    hits: dict[str, list[float]] = defaultdict(list)
    chance: dict[str, list[float]] = defaultdict(list)
    all_m, all_mv, all_t, all_tv, all_mp, all_tp = [], [], [], [], [], []
    root = Path(data)
    for lo in range(0, n, batch_size):
        recs = [index[i] for i in range(lo, min(n, lo + batch_size))]
        masks = torch.from_numpy(np.stack([letterbox(read_mask(root / r["mask"]), cfg.image_size, fill=0, nearest=True)
                                           for r in recs]).astype(np.int64))
        m, mv, mp = model.encode_mask(masks)
        parts = _patch_parts(masks, cfg.patch)
        caps = [r["captions"] for r in recs]
        flat = [(i, c) for i, cs in enumerate(caps) for c in cs]
        encoded = [tok.encode(c, cfg.max_text_len) for _, c in flat]
        ids = torch.from_numpy(np.stack([e[0] for e in encoded]))
        lens = torch.tensor([e[1] for e in encoded])
        t, tv, tp = model.encode_text(ids, lens)
        for row, (i, c) in enumerate(flat):
            for word, pos in words_with_tokens(tok, c, cfg.max_text_len):
                label = part_of_word(word)
                if label is None:
                    continue
                k = LABEL_ID[label]
                holds = parts[i, k] & mv[i]
                if not holds.any():
                    continue  # the part is named but has no garment patch here
                emb = F.normalize(t[row, pos].mean(0), dim=-1)
                sims = (m[i] @ emb).masked_fill(~mv[i], float("-inf"))
                hits[label].append(float(holds[int(sims.argmax())]))
                chance[label].append(float(holds.sum() / mv[i].sum()))
        first = [0] + list(np.cumsum([len(cs) for cs in caps])[:-1])
        all_m.append(m), all_mv.append(mv), all_mp.append(mp)
        all_t.append(t[first]), all_tv.append(tv[first]), all_tp.append(tp[first])
        if progress:
            progress(len(recs))
    per_part = {k: float(np.mean(v)) for k, v in sorted(hits.items())}
    chance_part = {k: float(np.mean(v)) for k, v in sorted(chance.items())}
    r = _retrieval(torch.cat(all_m), torch.cat(all_mv), torch.cat(all_t), torch.cat(all_tv),
                   torch.cat(all_mp), torch.cat(all_tp), cfg.loss)
    acc = float(np.mean(list(per_part.values()))) if per_part else None
    ch = float(np.mean(list(chance_part.values()))) if chance_part else None
    return {"model": str(b.path), "loss": cfg.loss, "split": split, "samples": n,
            "pointing_accuracy": acc, "pointing_chance": ch,
            "pointing_over_chance": (acc / ch) if acc is not None and ch else None,
            "pointing_per_part": per_part, "pointing_chance_per_part": chance_part,
            "pointing_words": {k: len(v) for k, v in sorted(hits.items())}, **r}


def _retrieval(m, mv, t, tv, mp, tp, loss: str, chunk: int = 64) -> dict:
    rows = []
    for lo in range(0, len(m), chunk):
        if loss == "global":
            rows.append(mp[lo:lo + chunk] @ tp.t())
        else:
            sim_m, _ = token_similarity(m[lo:lo + chunk], mv[lo:lo + chunk], t, tv)
            rows.append(sim_m)
    sim = torch.cat(rows)  # (N masks, N captions)
    target = torch.arange(len(sim))
    rank_m2t = (sim > sim[target, target][:, None]).sum(1)
    rank_t2m = (sim.t() > sim[target, target][:, None]).sum(1)
    return {"recall_at_1": float((rank_m2t < 1).float().mean()), "recall_at_5": float((rank_m2t < 5).float().mean()),
            "text_to_mask_recall_at_1": float((rank_t2m < 1).float().mean()),
            "text_to_mask_recall_at_5": float((rank_t2m < 5).float().mean()), "retrieval_pool": len(sim)}
