"""Torch dataset over the on-disk format: image, mask, caption ids, sketch, partial image.

Augmentation is seeded per (seed, epoch, index), so the same sample gets the same
caption choice, flip and crop in any worker and on any rank; call `set_epoch` between
epochs to get new ones.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import UserError
from ..formats.dataset import DatasetError, Index, read_meta
from ..formats.images import BadFile, read_image, read_mask
from ..labels import NUM_LABELS
from .tokenizer import CaptionTokenizer
from .transforms import letterbox, partial, partial_box, sketch

log = logging.getLogger(__name__)

IGNORE_INDEX = 255  # mask value where a sample has no mask


class GarmentDataset(Dataset):
    """Yields dicts of tensors:

    image (3, S, S) float in [-1, 1]; mask (S, S) int64 (IGNORE_INDEX where unknown);
    has_mask bool; text (L,) int64; text_len int64; sketch (1, S, S) float in {0, 1};
    partial (3, S, S) float in [-1, 1] (white outside the kept box); keep (1, S, S) float.
    With `captions=False` (the segmenter's data) there is no text or text_len and no caption
    tokenizer is needed; the random stream, and so every other field, stays the same.
    """

    def __init__(self, root: str | os.PathLike, split: str | tuple[str, ...] | None = "train",
                 image_size: int = 64, tokenizer: CaptionTokenizer | None = None, max_text_len: int = 64,
                 augment: bool = True, seed: int = 0, caption: str = "random", require_mask: bool = False,
                 captions: bool = True):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.index = Index(self.root, split, where=(lambda r: bool(r.get("mask"))) if require_mask else None)
        self.tokenizer = (tokenizer or dataset_tokenizer(self.root, self.meta)) if captions else None
        self.size, self.max_text_len = image_size, max_text_len
        self.augment, self.seed, self.epoch = augment, seed, 0
        if caption not in ("random", "first"):
            raise UserError("caption must be 'random' or 'first'")
        self.caption = caption
        self.bad: dict[int, str] = {}     # samples that could not be read: index -> why
        self.max_bad_fraction = 0.001     # more unreadable samples than this share stop the run

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        """Sample i, or, when its files cannot be read, the next readable one (the bad one is
        counted in `bad` and warned about once; beyond `max_bad_fraction` of the dataset the
        run stops with a DatasetError). In DataLoader workers each worker counts its own."""
        n = len(self)
        for k in range(n):
            j = (i + k) % n
            if j in self.bad:
                continue
            try:
                return self._load(j)
            except (BadFile, OSError, ValueError, KeyError, IndexError) as e:
                self._mark_bad(j, e)
        raise DatasetError(f"{self.root}: no readable sample")

    def _mark_bad(self, j: int, e: Exception) -> None:
        self.bad[j] = f"{self.index[j].get('id')!r}: {e}"
        log.warning("skipping unreadable sample %s", self.bad[j])
        if len(self.bad) > self.max_bad_fraction * len(self):
            first = next(iter(self.bad.values()))
            raise DatasetError(f"{self.root}: {len(self.bad)} of {len(self)} samples unreadable, more than "
                               f"max_bad_fraction {self.max_bad_fraction:g} allows (first: {first}); run "
                               f"`armani data check {self.root}`")

    def _load(self, i: int) -> dict:
        rec = self.index[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img = letterbox(read_image(self.root / rec["image"]), self.size)
        has_mask = rec.get("mask") is not None
        if has_mask:
            mask = letterbox(read_mask(self.root / rec["mask"]), self.size, fill=0, nearest=True)
        else:
            mask = np.full((self.size, self.size), IGNORE_INDEX, np.uint8)
        caps = rec["captions"]
        text = caps[int(rng.integers(len(caps)))] if self.caption == "random" and self.augment else caps[0]
        if self.augment and rng.random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        box = partial_box(rng, self.size, self.size)
        part, keep = partial(img, box)
        edges = sketch(np.ascontiguousarray(img))
        out = {
            "image": to_unit(img),
            "mask": torch.from_numpy(mask.astype(np.int64)),
            "has_mask": torch.tensor(has_mask),
            "sketch": torch.from_numpy(edges > 0).float()[None],
            "partial": to_unit(part),
            "keep": torch.from_numpy(keep).float()[None],
        }
        if self.tokenizer is not None:
            ids, n = self.tokenizer.encode(text, self.max_text_len)
            out.update(text=torch.from_numpy(ids), text_len=torch.tensor(n))
        return out


def dataset_tokenizer(root: str | os.PathLike, meta: dict | None = None) -> CaptionTokenizer:
    """The caption tokenizer a dataset names in dataset.json (`"tokenizer"`), or a
    DatasetError that says how to make one."""
    meta = read_meta(root) if meta is None else meta
    name = meta.get("tokenizer")
    if not name or not isinstance(name, str):
        raise DatasetError(f"{root} has no tokenizer; run `armani data tokenizer {root}` first")
    try:
        return CaptionTokenizer.from_file(Path(root) / name)
    except Exception as e:  # noqa: BLE001 - any unreadable tokenizer file
        raise DatasetError(f"{Path(root) / name}: cannot load the tokenizer ({e})") from None


def to_unit(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def loader_workers(wanted: int) -> int:
    """`wanted` loader processes, at most the machine's cores minus one (the main process
    keeps a core; the batches are the same for any number)."""
    return min(wanted, max(0, (os.cpu_count() or 1) - 1))


def make_loader(ds: GarmentDataset, batch_size: int, shuffle: bool = True, workers: int = 0,
                seed: int = 0, drop_last: bool = True) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=g,
                      drop_last=drop_last, persistent_workers=workers > 0, pin_memory=False)


assert NUM_LABELS < IGNORE_INDEX
