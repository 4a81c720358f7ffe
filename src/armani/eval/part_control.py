"""The part-control test: does naming a part put it in the image?

For validation garments whose category draws part p on some garments and not others
(`data.part_prompts.OPTIONAL_PARTS`), two captions of the same garment differ only in p's
phrase. A model generates from both; the attribute judge says whether p is in each image.

    effect(p) = P(judge finds p | p named) - P(judge finds p | p not named)

averaged over a pair's samples, then its pairs, then (for the mean) over the parts the judge
reads well on real images (balanced accuracy >= `eval.judge.PART_GATE`). Pairs of a held-out
(category, part), never seen together in training, are kept apart: the compositional
hold-out. The same images give category, colour and pattern accuracy.

`likelihood_gap` is the sampling-free twin: the NLL of a garment's real image tokens under
the caption without p minus under the caption with p (nats per image), for garments that
have p. Positive: naming p makes the real image with p more likely.

Statistics (`eval.metrics.two_way_bootstrap`): intervals resample stage-2 seeds and, within each part,
prompt pairs; a difference between two arms resamples the same seeds and pairs for both
(paired), since every arm is scored on the same pairs with the same sampling seeds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.part_prompts import OPTIONAL_PARTS, prompt_pair
from ..data.synth import present_parts
from ..data.vocab import JUDGE_PARTS
from ..formats.dataset import Index
from ..formats.images import read_mask
from .metrics import interval, two_way_bootstrap


@dataclass(frozen=True)
class PartPair:
    index: int          # the garment's position in its split
    id: str
    category: str
    part: str
    named: str
    unnamed: str
    attributes: dict
    has_part: bool      # the real garment has the part
    holdout: bool       # (category, part) never appears together in training


def part_pairs(data: str | os.PathLike, split: str = "val", per_part: int = 16,
               holdout: dict[str, set[str]] | None = None, need_part: bool = False,
               seed: int = 0) -> list[PartPair]:
    """Up to `per_part` prompt pairs per judged part from the first garments of `split` whose
    category makes the part optional, and up to `per_part` per held-out (category, part);
    with `need_part`, only garments that have the part (for the likelihood gap, which scores
    the real image)."""
    idx = Index(data, split, where=lambda r: bool(r.get("attributes")) and bool(r.get("mask")))
    held = {(c, p) for c, ps in (holdout or {}).items() for p in ps}
    count: dict[tuple, int] = {}
    out = []
    for i in range(len(idx)):
        rec = idx[i]
        a = rec["attributes"]
        cat = a.get("category")
        parts = present_parts(read_mask(Path(data) / rec["mask"]))
        for p in OPTIONAL_PARTS.get(cat, ()):
            key = (cat, p) if (cat, p) in held else p
            if count.get(key, 0) >= per_part or (need_part and p not in parts):
                continue
            named, unnamed = prompt_pair(a, parts, p, seed=seed * 1_000_003 + i)
            count[key] = count.get(key, 0) + 1
            out.append(PartPair(i, rec["id"], cat, p, named, unnamed, a, p in parts, (cat, p) in held))
    return out


@torch.no_grad()
def judge_pairs(g, judge, pairs: list[PartPair], samples: int = 2, seed: int = 0, batch: int = 64,
                progress=None) -> dict[str, np.ndarray]:
    """Generate `samples` images for each caption of each pair (text only) and judge them:
    `named`, `unnamed` (pairs, samples) bool: the part found; `category`, `color`, `pattern`
    (2 * pairs, samples) float: the prompted attribute read (NaN where the caption states
    none: colour on patterned garments, pattern on solid ones)."""
    from .generation import Prompt, generate_for
    from .judge import attribute_hits, prompted
    prompts = [Prompt(f"{pp.id}:{pp.part}:{k}", cap, pp.attributes, None)
               for pp in pairs for k, cap in (("named", pp.named), ("unnamed", pp.unnamed))]
    images, _ = generate_for(g, prompts, "text", samples, seed, batch=batch, progress=progress)
    reading = judge.read(images)
    found = reading["parts"].reshape(len(pairs), 2, samples, len(JUDGE_PARTS))
    col = np.array([JUDGE_PARTS.index(pp.part) for pp in pairs])
    out = {"named": found[np.arange(len(pairs)), 0, :, col], "unnamed": found[np.arange(len(pairs)), 1, :, col]}
    for k in ("category", "color", "pattern"):
        out[k] = np.full((len(prompts), samples), np.nan)
    for j, p in enumerate(prompts):
        want = prompted(p.caption, p.attributes)
        for s in range(samples):
            hits = attribute_hits(reading, j * samples + s, want)
            for k in ("category", "color", "pattern"):
                if k in hits:
                    out[k][j, s] = float(hits[k])
    return out


@torch.no_grad()
def likelihood_gap(g, tokens: str | os.PathLike, pairs: list[PartPair], split: str = "val",
                   batch: int = 32) -> np.ndarray:
    """Per pair (garments that have the part): NLL(real tokens | caption without p) - NLL(real
    tokens | caption with p), nats per image, text as the only condition."""
    import torch.nn.functional as F
    tr, cfg = g.transformer, g.transformer.cfg
    dev = g.device
    image = np.load(Path(tokens) / f"{split}.image.npy")
    out = []
    for start in range(0, len(pairs), batch):
        part = pairs[start:start + batch]
        img = torch.from_numpy(image[[pp.index for pp in part]].astype(np.int64)).to(dev)
        nll = []
        for which in ("named", "unnamed"):
            ids = torch.stack([torch.from_numpy(g.tokenizer.encode(getattr(pp, which), cfg.text_len)[0])
                               for pp in part]).long().to(dev)
            b = len(part)
            sketch = torch.full((b, cfg.sketch_len), cfg.sketch_empty, dtype=torch.long, device=dev)
            partial = torch.full((b, cfg.image_len), cfg.image_empty, dtype=torch.long, device=dev)
            logits = tr(ids, sketch, partial, img).float()
            nll.append(F.cross_entropy(logits.transpose(1, 2), img, reduction="none").sum(1))
        out.append((nll[1] - nll[0]).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def blocks(runs: list[dict], value, select, pairs_key: str = "pairs") -> dict[str, np.ndarray]:
    """(seeds, pairs) arrays of `value(run)` (one number per pair), one per key `select(pair)`
    gives (None: left out). `runs` are one arm's per-seed records (same pairs in each)."""
    keys: dict[str, list[int]] = {}
    for j, p in enumerate(runs[0][pairs_key]):
        k = select(p)
        if k is not None:
            keys.setdefault(k, []).append(j)
    vals = np.stack([np.asarray(value(r), np.float64) for r in runs])
    return {k: vals[:, js] for k, js in keys.items()}


def _rate(which: str):
    return lambda r: np.asarray(r[which], np.float64).mean(1)


def _effect(r: dict) -> np.ndarray:
    return _rate("named")(r) - _rate("unnamed")(r)


def summarise(blocks: dict[str, np.ndarray], seed: int = 0, n: int = 1000, mean: bool = True) -> dict:
    """Per key its value (the mean over seeds and pairs) and 95% interval, and the mean over
    keys with its interval."""
    out = {k: {"effect": float(b.mean()), "ci95": interval(two_way_bootstrap([b], n, seed)), "pairs": b.shape[1]}
           for k, b in sorted(blocks.items())}
    if blocks and mean:
        draws = two_way_bootstrap(list(blocks.values()), n, seed)
        out["mean"] = {"effect": float(np.mean([b.mean() for b in blocks.values()])), "ci95": interval(draws)}
    return out


def _attribute_blocks(runs: list[dict]) -> dict[str, np.ndarray]:
    """Per attribute (category, colour, pattern): (seeds, prompts) accuracy over the prompts
    that state it."""
    out = {}
    for k in ("category", "color", "pattern"):
        hits = np.stack([np.asarray(r[k], np.float64) for r in runs])  # (seeds, prompts, samples)
        stated = ~np.isnan(hits[0, :, 0])  # NaN where the caption does not state it
        per = np.nan_to_num(hits).mean(2)
        if stated.any():
            out[k] = per[:, stated]
    return out


def _sections(runs: list[dict], scored: list[str]) -> dict[str, dict[str, np.ndarray]]:
    def main(p):
        return p["part"] if not p["holdout"] else None

    def held(p):
        return f"{p['category']}:{p['part']}" if p["holdout"] and p["part"] in scored else None

    return {"part_control": blocks(runs, _effect, lambda p: main(p) if p["part"] in scored else None),
            "unscored": blocks(runs, _effect, lambda p: main(p) if p["part"] not in scored else None),
            "named": blocks(runs, _rate("named"), main), "unnamed": blocks(runs, _rate("unnamed"), main),
            "holdout": blocks(runs, _effect, held),
            "likelihood_gap": blocks(runs, lambda r: r["gap"], lambda p: p["part"], "gap_pairs"),
            "attributes": _attribute_blocks(runs)}


def arm_summary(runs: list[dict], scored: list[str], seed: int = 0, n: int = 1000) -> dict:
    """One arm over its seeds: `part_control` (effect per scored part and their mean, 95%
    intervals over seeds and prompt pairs), the same per part the judge does not read well
    (`part_control_unscored`, no mean), the rates with and without the part named, the
    hold-out effects beside the same parts on categories seen with them, attribute accuracy
    and the likelihood gap."""
    b = _sections(runs, scored)
    pc = summarise(b["part_control"], seed, n)
    for p, d in pc.items():
        if p != "mean":
            d["named"], d["unnamed"] = float(b["named"][p].mean()), float(b["unnamed"][p].mean())
    held = summarise(b["holdout"], seed, n)
    for k, d in held.items():
        if k != "mean":
            part = k.split(":")[1]
            d["seen"] = pc.get(part, {}).get("effect")
    return {"part_control": pc, "part_control_unscored": summarise(b["unscored"], seed, n, mean=False),
            "holdout": held, "attributes": summarise(b["attributes"], seed, n, mean=False),
            "likelihood_gap": summarise(b["likelihood_gap"], seed, n)}


def paired_summary(runs_a: list[dict], runs_b: list[dict], scored: list[str], seed: int = 0, n: int = 1000) -> dict:
    """Arm a minus arm b, paired: the same seeds and prompt pairs are resampled for both."""
    a, b = _sections(runs_a, scored), _sections(runs_b, scored)
    out = {}
    for key in ("part_control", "holdout", "likelihood_gap", "attributes"):
        common = sorted(set(a[key]) & set(b[key]))
        out[key] = summarise({k: a[key][k] - b[key][k] for k in common}, seed, n, mean=key != "attributes")
    return out


@torch.no_grad()
def judge_reconstructions(model: str | os.PathLike, judge: str | os.PathLike, data: str | os.PathLike,
                          split: str = "val", max_samples: int = 200, batch: int = 32) -> dict:
    """A stage-1 model's ceiling for the part-control test: the judge on its reconstructions of
    real images (fused with their first caption), scored against the real masks."""
    from ..data.attributes import targets
    from ..data.dataset import GarmentDataset
    from ..inference.image_tokens import load_image_tokenizer
    from .judge import Judge, judge_scores
    st = load_image_tokenizer(model)
    j = Judge(judge)
    size = st.vq.cfg.image_size
    ds = GarmentDataset(data, split, image_size=size, tokenizer=st.tokenizer, max_text_len=st.max_text_len,
                        augment=False, caption="first")
    n = min(len(ds), max_samples)
    images, truth = [], []
    for start in range(0, n, batch):
        items = [ds[i] for i in range(start, min(n, start + batch))]
        b = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask", "has_mask", "text", "text_len")}
        idx = st.encode(b["image"], b["text"], b["text_len"], b["mask"], b["has_mask"])
        rec = st.decode(idx)
        images.append(((rec.float() + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())
        for i, it in zip(range(start, start + len(items)), items):
            truth.append(targets(ds.index[i], it["mask"].numpy()))
    rep = judge_scores(j.read(np.concatenate(images)), truth)
    return {"split": split, "samples": n, **rep}
