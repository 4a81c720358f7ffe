"""Segmenter quality: per-label IoU and mIoU over a split."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.dataset import IGNORE_INDEX, GarmentDataset
from ..errors import UserError
from ..formats.pipeline import load_model
from ..labels import LABELS, NUM_LABELS, SMALL_PARTS


@torch.no_grad()
def confusion_matrix(model: torch.nn.Module, loader, device: str = "cpu", progress=None) -> np.ndarray:
    """(K, K) pixel counts, rows = ground truth, columns = prediction."""
    conf = torch.zeros(NUM_LABELS * NUM_LABELS, dtype=torch.int64)
    model.eval().to(device)
    for batch in loader:
        pred = model(batch["image"].to(device)).argmax(1).cpu()
        gt = batch["mask"]
        ok = gt != IGNORE_INDEX
        conf += torch.bincount(gt[ok] * NUM_LABELS + pred[ok], minlength=NUM_LABELS ** 2)
        if progress:
            progress(len(gt))
    return conf.view(NUM_LABELS, NUM_LABELS).numpy()


def iou_report(conf: np.ndarray) -> dict:
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = {LABELS[i]: (float(inter[i] / union[i]) if union[i] > 0 else None) for i in range(NUM_LABELS)}
    seen = [v for v in iou.values() if v is not None]
    parts = [v for k, v in iou.items() if v is not None and k != "background"]
    return {
        "miou": float(np.mean(seen)) if seen else None,           # over labels present, background included
        "miou_parts": float(np.mean(parts)) if parts else None,   # background excluded
        "iou_per_label": iou,
        "iou_small_parts": {k: iou[k] for k in SMALL_PARTS},
        "pixel_accuracy": float(inter.sum() / max(conf.sum(), 1)),
    }


def evaluate_segmenter(model_path: str | os.PathLike, data: str | os.PathLike, split: str = "val",
                       batch_size: int = 64, progress=None) -> dict:
    b = load_model(model_path, "segmenter")
    ds = GarmentDataset(data, split, image_size=b.model.cfg.image_size, augment=False, require_mask=True,
                        captions=False)
    if len(ds) == 0:
        raise UserError(f"{data}: no samples with masks in split {split!r}")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    rep = iou_report(confusion_matrix(b.model, loader, progress=progress))
    return {"split": split, "samples": len(ds), "model": str(b.path), **rep}
