"""The attribute judge at evaluation: its accuracy on real images, and how it scores
generated ones (it trains in `armani.train.judge`).

The judge learns category, main colour and pattern from each sample's `attributes` and which
parts are present from its mask. It is trusted for an attribute only where its accuracy on
held-out real images reaches `TRUST` (and at all only where category and colour both do;
colour is read on solid garments only):
`judge_report` says which attributes pass. A prompt's attributes are what its caption states
(category always, colour and pattern when named, each part it names); the generated-image
attribute accuracy is the share of those that the judge reads in the image.
"""
from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..data.attributes import COLOR_NAMES, JudgeDataset, targets
from ..data.dataset import to_unit
from ..data.transforms import letterbox
from ..data.vocab import CATEGORIES, JUDGE_PARTS, PATTERNS, parts_named
from ..formats.images import read_image, read_mask
from ..formats.pipeline import load_model

TRUST = 0.95  # least accuracy on real images for an attribute to be judged
PART_GATE = 0.90  # least balanced accuracy on real images for a part to be scored in the part-control test
_PATTERN_RE = {"striped": re.compile(r"\bstripe"), "dotted": re.compile(r"\bdots?\b|polka"),
               "checked": re.compile(r"\bcheck|plaid")}


def shipped_judge() -> Path | None:
    """The SynthFashion judge inside the installed package (64 px; `pretrained/judge/README.md`
    says how it was trained and what it reads), if this build has one."""
    p = Path(str(resources.files("armani") / "pretrained" / "judge"))
    return p if (p / "model.safetensors").is_file() else None


class Judge:
    """A trained judge: `read(images)` -> what it sees in uint8 RGB images (N, S, S, 3)."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu"):
        b = load_model(path, "judge", device)
        self.model, self.path, self.device = b.model.eval(), b.path, torch.device(device)
        self.size = int(self.model.cfg.image_size)

    @torch.no_grad()
    def read(self, images: np.ndarray, batch: int = 128) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"category": [], "color": [], "pattern": [], "parts": []}
        for i in range(0, len(images), batch):
            x = torch.stack([to_unit(letterbox(im, self.size)) for im in images[i:i + batch]]).to(self.device)
            o = self.model(x)
            for k in ("category", "color", "pattern"):
                out[k].append(o[k].argmax(1).cpu().numpy())
            out["parts"].append((o["parts"] > 0).cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


def prompted(caption: str, attributes: dict) -> dict[str, int | bool]:
    """The attributes a caption states, as the judge's outputs: {"category": i, "color": j,
    "pattern": k, "part:zipper": True, ...}. Colour and pattern only when the caption names
    them, colour only for solid garments (see `evaluate_judge`)."""
    text = caption.lower()
    want: dict[str, int | bool] = {"category": CATEGORIES.index(attributes["category"])}
    solid = attributes.get("pattern", "solid") == "solid"
    if solid and re.search(rf"\b{re.escape(attributes['color'])}\b", text):
        want["color"] = COLOR_NAMES.index(attributes["color"])
    p = attributes.get("pattern", "solid")
    if p in _PATTERN_RE and _PATTERN_RE[p].search(text):
        want["pattern"] = PATTERNS.index(p)
    for part in sorted(parts_named(caption) & set(JUDGE_PARTS)):
        want[f"part:{part}"] = True
    return want


def attribute_hits(reading: dict[str, np.ndarray], i: int, want: dict) -> dict[str, bool]:
    """For image i: does the judge read each wanted attribute?"""
    hits = {}
    for k, v in want.items():
        if k.startswith("part:"):
            hits[k] = bool(reading["parts"][i, JUDGE_PARTS.index(k[5:])])
        else:
            hits[k] = int(reading[k][i]) == int(v)
    return hits


def evaluate_judge(path: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                   max_samples: int | None = None) -> dict:
    """The judge on real held-out images: accuracy per head, balanced accuracy per part, and
    which attributes it may judge (`trusted`: accuracy >= TRUST; none unless category and
    colour both pass)."""
    judge = Judge(path)
    ds = JudgeDataset(data, split, judge.size, augment=False)
    n = len(ds) if max_samples is None else min(len(ds), max_samples)
    imgs, tg = [], []
    for i in range(n):
        rec = ds.index[i]
        imgs.append(letterbox(read_image(ds.root / rec["image"]), judge.size))
        tg.append(targets(rec, letterbox(read_mask(ds.root / rec["mask"]), judge.size, fill=0, nearest=True)))
    rep = judge_scores(judge.read(np.stack(imgs)), tg)
    acc, parts = rep["accuracy"], rep["parts"]
    gate = acc["category"] >= TRUST and acc["color"] >= TRUST
    trusted = [k for k in ("category", "color", "pattern") if gate and acc[k] >= TRUST]
    trusted += [f"part:{p}" for p, d in parts.items()
                if gate and d["balanced_accuracy"] is not None and d["balanced_accuracy"] >= TRUST]
    return {"split": split, "samples": n, "accuracy": acc, "parts": parts, "threshold": TRUST,
            "usable": gate, "trusted": trusted, "part_gate": PART_GATE, "scored_parts": scored_parts(parts)}


def judge_scores(reading: dict[str, np.ndarray], truth: list[dict]) -> dict:
    """What the judge read against the truth (`targets` of each image): accuracy per head
    (colour on solid garments; `color_all` on every garment) and recall, specificity and
    balanced accuracy per part."""
    acc = {k: float(np.mean(reading[k] == np.array([t[k] for t in truth]))) for k in ("category", "color", "pattern")}
    # The main colour of a striped, dotted or checked garment shares the fabric with a second
    # colour and is often not the larger one: colour is judged (and measured) on solid garments.
    solid = np.array([t["pattern"] == PATTERNS.index("solid") for t in truth])
    acc["color_all"] = acc["color"]
    colors = np.array([t["color"] for t in truth])
    acc["color"] = float(np.mean(reading["color"][solid] == colors[solid])) if solid.any() else 0.0
    present = np.stack([t["parts"] > 0 for t in truth])
    parts = {}
    for j, p in enumerate(JUDGE_PARTS):
        pos, neg = present[:, j], ~present[:, j]
        recall = float(reading["parts"][pos, j].mean()) if pos.any() else None
        spec = float((~reading["parts"][neg, j]).mean()) if neg.any() else None
        bal = None if recall is None or spec is None else (recall + spec) / 2
        parts[p] = {"recall": recall, "specificity": spec, "balanced_accuracy": bal, "present": int(pos.sum())}
    return {"accuracy": acc, "parts": parts}


def scored_parts(parts: dict[str, dict], gate: float = PART_GATE) -> list[str]:
    """The parts whose balanced accuracy on real images reaches `gate` (the part-control test
    scores only these)."""
    return [p for p, d in parts.items() if d.get("balanced_accuracy") is not None and d["balanced_accuracy"] >= gate]
