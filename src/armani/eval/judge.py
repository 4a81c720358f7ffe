"""The attribute judge: training on SynthFashion, its accuracy on real images, and how it
scores generated ones.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..config import TrainConfig
from ..data.dataset import to_unit
from ..data.transforms import letterbox
from ..data.vocab import CATEGORIES, COLORS, PATTERNS, parts_named
from ..errors import UserError
from ..formats.bundle import load_bundle
from ..formats.dataset import Index, read_meta
from ..formats.images import read_image, read_mask
from ..labels import LABEL_ID
from ..models.judge import JUDGE_PARTS, AttributeJudge, JudgeConfig
from ..train.loop import Task
from ..train.tasks import load_configs

TRUST = 0.95  # least accuracy on real images for an attribute to be judged
COLOR_NAMES = tuple(COLORS)
_PATTERN_RE = {"striped": re.compile(r"\bstripe"), "dotted": re.compile(r"\bdots?\b|polka"),
               "checked": re.compile(r"\bcheck|plaid")}


def targets(rec: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
    a = rec.get("attributes") or {}
    if a.get("category") not in CATEGORIES or a.get("color") not in COLOR_NAMES or a.get("pattern") not in PATTERNS:
        raise UserError(f"sample {rec.get('id')} has no SynthFashion attributes (category, color, pattern): "
                         "the judge trains on SynthFashion data")
    present = np.bincount(mask.reshape(-1), minlength=len(LABEL_ID)) > 0
    return {"category": np.int64(CATEGORIES.index(a["category"])), "color": np.int64(COLOR_NAMES.index(a["color"])),
            "pattern": np.int64(PATTERNS.index(a["pattern"])),
            "parts": np.array([present[LABEL_ID[p]] for p in JUDGE_PARTS], np.float32)}


def degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training-time blur and noise on a batch in [-1, 1], so that the judge also reads decoded
    (softer, noisier) images: half the images are down- and upsampled by one random factor
    (to between 1/2 and all of the size), half get Gaussian noise of a random strength."""
    b, s = x.shape[0], x.shape[-1]
    small = int(torch.randint(s // 2, s, (1,), generator=gen))
    soft = F.interpolate(F.interpolate(x, size=(small, small), mode="bilinear", align_corners=False, antialias=True),
                         size=(s, s), mode="bilinear", align_corners=False)
    pick = (torch.rand(b, 1, 1, 1, generator=gen) < 0.5).to(x.device)
    x = torch.where(pick, soft, x)
    sigma = (torch.rand(b, 1, 1, 1, generator=gen) * 6 + 2) / 127.5 * (torch.rand(b, 1, 1, 1, generator=gen) < 0.5)
    return (x + sigma.to(x.device) * torch.randn(x.shape, generator=gen).to(x.device)).clamp(-1, 1)


class JudgeDataset(Dataset):
    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = 64, augment: bool = True,
                 seed: int = 0):
        self.root, self.size, self.augment, self.seed, self.epoch = Path(root), image_size, augment, seed, 0
        self.index = Index(self.root, split, where=lambda r: bool(r.get("mask")) and bool(r.get("attributes")))
        if not len(self.index):
            raise UserError(f"{root}: no {split} samples with attributes and masks (the judge needs SynthFashion)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        rec = self.index[i]
        img = letterbox(read_image(self.root / rec["image"]), self.size)
        mask = letterbox(read_mask(self.root / rec["mask"]), self.size, fill=0, nearest=True)
        if self.augment and np.random.default_rng([self.seed, self.epoch, i]).random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        t = {k: torch.from_numpy(np.asarray(v)) for k, v in targets(rec, mask).items()}
        return {"image": to_unit(img), "mask": torch.from_numpy(mask.astype(np.int64)), **t}


PART_IDS = torch.tensor([LABEL_ID[p] for p in JUDGE_PARTS])


def part_cells(mask: torch.Tensor, size: int) -> torch.Tensor:
    """(B, S, S) label ids -> (B, P, size, size): does each cell of a size x size grid show the part?"""
    onehot = (mask[:, None] == PART_IDS.to(mask.device)[None, :, None, None]).float()
    return F.adaptive_max_pool2d(onehot, size)


def judge_loss(out: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
    terms = {k: F.cross_entropy(out[k].float(), batch[k]) for k in ("category", "color", "pattern")}
    terms["parts"] = F.binary_cross_entropy_with_logits(out["parts"].float(), batch["parts"])
    pm = out["part_map"].float()
    terms["part_map"] = F.binary_cross_entropy_with_logits(pm, part_cells(batch["mask"], pm.shape[-1]))
    loss = sum(terms.values())
    return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


@dataclass
class JudgeTask(Task):
    data: Path = Path()
    train_cfg: TrainConfig = field(default_factory=TrainConfig)

    def build_model(self) -> nn.Module:
        return AttributeJudge(self.model_config)

    def train_dataset(self):
        return JudgeDataset(self.data, "train", self.model_config.image_size, seed=self.train_cfg.seed)

    def compute_loss(self, model, batch):
        gen = torch.Generator().manual_seed(self.train_cfg.seed * 1_000_003 + self.step)
        return judge_loss(model(degrade(batch["image"], gen)), batch)


def judge_task(data: str | os.PathLike, config=None, **train_overrides) -> tuple[JudgeTask, TrainConfig]:
    model_cfg, train_cfg = load_configs("judge", config, JudgeConfig, train_overrides)
    read_meta(data)
    JudgeDataset(data, "train", model_cfg.image_size)  # fails early on data without attributes
    task = JudgeTask(kind="judge", model_config=model_cfg, data=Path(data), train_cfg=train_cfg,
                     preprocessing={"image_size": model_cfg.image_size, "letterbox_fill": 255, "pixel_range": [-1, 1]})
    task.channels_last = True
    return task, train_cfg


class Judge:
    """A trained judge: `read(images)` -> what it sees in uint8 RGB images (N, S, S, 3)."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu"):
        b = load_bundle(path, "judge", device)
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
    r = judge.read(np.stack(imgs))
    acc = {k: float(np.mean(r[k] == np.array([t[k] for t in tg]))) for k in ("category", "color", "pattern")}
    # The main colour of a striped, dotted or checked garment shares the fabric with a second
    # colour and is often not the larger one: colour is judged (and measured) on solid garments.
    solid = np.array([t["pattern"] == PATTERNS.index("solid") for t in tg])
    acc["color_all"] = acc["color"]
    colors = np.array([t["color"] for t in tg])
    acc["color"] = float(np.mean(r["color"][solid] == colors[solid])) if solid.any() else 0.0
    truth = np.stack([t["parts"] > 0 for t in tg])
    parts = {}
    for j, p in enumerate(JUDGE_PARTS):
        pos, neg = truth[:, j], ~truth[:, j]
        rec_ = float(r["parts"][pos, j].mean()) if pos.any() else None
        spec = float((~r["parts"][neg, j]).mean()) if neg.any() else None
        bal = None if rec_ is None or spec is None else (rec_ + spec) / 2
        parts[p] = {"recall": rec_, "specificity": spec, "balanced_accuracy": bal, "present": int(pos.sum())}
    gate = acc["category"] >= TRUST and acc["color"] >= TRUST
    trusted = [k for k in ("category", "color", "pattern") if gate and acc[k] >= TRUST]
    trusted += [f"part:{p}" for p, d in parts.items()
                if gate and d["balanced_accuracy"] is not None and d["balanced_accuracy"] >= TRUST]
    return {"split": split, "samples": n, "accuracy": acc, "parts": parts, "threshold": TRUST,
            "usable": gate, "trusted": trusted}
