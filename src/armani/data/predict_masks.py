"""`armani data masks`: fill in part masks with a trained segmenter for the samples of a
dataset that have none, so real datasets without part annotations can train MaskCLIP."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import UserError
from ..formats.bundle import sha256_file
from ..formats.dataset import atomic_write_text, iter_records, read_meta, validate_record
from ..formats.fsutil import target_lock
from ..formats.images import encode_mask_png, read_image, write_bytes
from ..formats.pipeline import load_model
from .transforms import letterbox


def unletterbox(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """Undo `letterbox` for a (S, S) label map -> (h, w)."""
    s = mask.shape[0] / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    y, x = (mask.shape[0] - nh) // 2, (mask.shape[1] - nw) // 2
    return cv2.resize(mask[y:y + nh, x:x + nw], (w, h), interpolation=cv2.INTER_NEAREST)


@torch.no_grad()
def fill_masks(model_path: str | os.PathLike, root: str | os.PathLike, batch_size: int = 32,
               overwrite: bool = False, progress=None) -> int:
    """Predict masks for records whose mask is null (all records with `overwrite`);
    returns how many were written. The index is rewritten atomically at the end; the
    dataset's lock is held throughout, so no other writer changes it meanwhile."""
    root = Path(root)
    read_meta(root)
    b = load_model(model_path, "segmenter")
    with target_lock(root):
        return _fill(b, root, batch_size, overwrite, progress)


def _mask_name(sid: str) -> str:
    """A file name for sample `sid`'s predicted mask: its id where that is a plain name."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in sid).lstrip(".") or "_"
    return safe if safe == sid else f"{safe}-{hashlib.sha1(sid.encode()).hexdigest()[:8]}"


def _fill(b, root: Path, batch_size: int, overwrite: bool, progress) -> int:
    size = b.model.cfg.image_size
    tag = f"segmenter:{sha256_file(b.path / 'model.safetensors')[:12]}"
    records = []
    for line, rec, err in iter_records(root):
        problems = [err] if rec is None else validate_record(rec, root)
        if problems:
            raise UserError(f"{root / 'index.jsonl'} line {line}: {'; '.join(problems)} (`armani data check` "
                            "lists every problem)")
        records.append(rec)
    todo = [r for r in records if overwrite or not r.get("mask")]
    for lo in range(0, len(todo), batch_size):
        chunk = todo[lo:lo + batch_size]
        imgs = [read_image(root / r["image"]) for r in chunk]
        x = torch.from_numpy(np.stack([letterbox(im, size) for im in imgs]).transpose(0, 3, 1, 2).copy())
        pred = b.model(x.float() / 127.5 - 1).argmax(1).numpy().astype(np.uint8)
        for r, im, p in zip(chunk, imgs, pred):
            rel = f"masks/predicted/{_mask_name(r['id'])}.png"
            out = root / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(out, encode_mask_png(unletterbox(p, *im.shape[:2])))
            r["mask"], r["mask_source"] = rel, tag
        if progress:
            progress(len(chunk))
    atomic_write_text(root / "index.jsonl", "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                                                    for r in records))
    return len(todo)
