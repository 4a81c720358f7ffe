"""SynthFashion's attribute labels as a dataset: category, main colour, pattern and which
parts each garment shows (from its mask). The attribute judge trains on it
(`armani.train.judge`) and is tested on it (`armani.eval.judge`)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from ..formats.dataset import Index
from ..formats.images import read_image, read_mask
from ..labels import LABEL_ID
from .dataset import to_unit
from .transforms import letterbox
from .vocab import CATEGORIES, COLORS, JUDGE_PARTS, PATTERNS

COLOR_NAMES = tuple(COLORS)


def targets(rec: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
    a = rec.get("attributes") or {}
    if a.get("category") not in CATEGORIES or a.get("color") not in COLOR_NAMES or a.get("pattern") not in PATTERNS:
        raise UserError(f"sample {rec.get('id')} has no SynthFashion attributes (category, color, pattern): "
                         "the judge trains on SynthFashion data")
    present = np.bincount(mask.reshape(-1), minlength=len(LABEL_ID)) > 0
    return {"category": np.int64(CATEGORIES.index(a["category"])), "color": np.int64(COLOR_NAMES.index(a["color"])),
            "pattern": np.int64(PATTERNS.index(a["pattern"])),
            "parts": np.array([present[LABEL_ID[p]] for p in JUDGE_PARTS], np.float32)}


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
