"""`armani data show`: a contact sheet of image, mask overlay, sketch, partial image and
caption for the first N samples of a split."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.transforms import letterbox, partial, partial_box, sketch
from ..errors import UserError
from ..formats.dataset import Index, read_meta
from ..formats.images import read_image, read_label_map, read_mask
from ..labels import colorize
from .sheet import label_font, table, text_panel

PANEL = 128
TEXT_W = 360


def overlay(img: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    col = colorize(mask).astype(np.float32)
    out = img.astype(np.float32)
    fg = (mask > 0)[..., None]
    return np.where(fg, (1 - alpha) * out + alpha * col, out * 0.5 + 127).astype(np.uint8)


def sample_row(root: Path, rec: dict, seed: int = 0) -> tuple[list[np.ndarray], str]:
    img = letterbox(read_image(root / rec["image"]), PANEL)
    if rec.get("mask"):
        ov = overlay(img, letterbox(read_mask(root / rec["mask"]), PANEL, fill=0, nearest=True))
    else:
        ov = np.full_like(img, 200)
    if rec.get("sketch"):
        sk = letterbox(read_label_map(root / rec["sketch"]).astype(np.uint8), PANEL, fill=0)
        sk = 255 - sk if sk.mean() < 128 else sk  # show dark lines on white whatever the source
        sk = np.repeat(sk[..., None], 3, 2)
    else:
        sk = np.repeat(255 - sketch(img)[..., None], 3, 2)
    part, _ = partial(img, partial_box(np.random.default_rng(seed), PANEL, PANEL))
    return [img, ov, sk, part], rec["captions"][0]


def contact_sheet(root: str | os.PathLike, n: int = 16, split: str | None = None,
                  out: str | os.PathLike = "grid.png") -> Path:
    root = Path(root)
    read_meta(root)
    index = Index(root, split)
    if len(index) == 0:
        raise UserError(f"{root}: no samples" + (f" in split {split!r}" if split else ""))
    font = label_font()
    rows = []
    for i in range(min(n, len(index))):
        rec = index[i]
        panels, caption = sample_row(root, rec, seed=i)
        lines = [f"{rec['id']} [{rec['split']}]"] + textwrap.wrap(caption, 56)[:6]
        rows.append(panels + [text_panel(lines, TEXT_W, font=font)])
    sheet = table(rows, "image | part mask | sketch (Canny) | partial (25%) | caption", font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return out
