"""The paper's Fig. 6, drawn from a trained MaskCLIP: for each word of a caption, the mask
patches and image patches it aligns to (similarity heat map, best patch boxed)."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data.transforms import letterbox
from ..errors import UserError
from ..formats.images import read_image_strict, read_mask
from ..report.preview import overlay
from ..report.sheet import label_font
from .alignment import load_maskclip, words_with_tokens

CELL = 160


@torch.no_grad()
def alignment_figure(model_path: str | os.PathLike, image: str | os.PathLike, mask: str | os.PathLike,
                     text: str, out: str | os.PathLike, max_words: int = 12) -> Path:
    if not text.strip():
        raise UserError("--text is empty")
    b, tok = load_maskclip(model_path)
    cfg = b.model.cfg
    img = read_image_strict(image)
    m = read_mask(mask)
    if m.shape != img.shape[:2]:
        raise UserError(f"mask is {m.shape[1]}x{m.shape[0]}, image is {img.shape[1]}x{img.shape[0]}")
    img_s = letterbox(img, cfg.image_size)
    m_s = letterbox(m, cfg.image_size, fill=0, nearest=True)
    mt, mv, _ = b.model.encode_mask(torch.from_numpy(m_s.astype(np.int64))[None])
    ids, n = tok.encode(text, cfg.max_text_len)
    tt, tv, _ = b.model.encode_text(torch.from_numpy(ids)[None], torch.tensor([n]))
    words = [(w, p) for w, p in words_with_tokens(tok, text, cfg.max_text_len) if any(ch.isalnum() for ch in w)]
    words = words[:max_words]
    g = cfg.grid
    big_img = letterbox(img_s, CELL)
    big_mask = overlay(big_img, letterbox(m_s, CELL, fill=0, nearest=True))
    font = label_font()
    rows = []
    for word, pos in words:
        emb = torch.nn.functional.normalize(tt[0, pos].mean(0), dim=-1)
        sims = (mt[0] @ emb).masked_fill(~mv[0], float("-inf"))
        best = int(sims.argmax())
        heat = torch.softmax(sims * b.model.logit_scale.exp().clamp(max=100), 0).view(g, g).numpy()
        heat = heat / max(heat.max(), 1e-9)
        heat_big = cv2.resize(heat.astype(np.float32), (CELL, CELL), interpolation=cv2.INTER_NEAREST)[..., None]
        panels = []
        for base in (big_mask, big_img):
            p = (base * (0.3 + 0.7 * heat_big)).astype(np.uint8)
            im = Image.fromarray(p)
            d = ImageDraw.Draw(im)
            y, x = divmod(best, g)
            s = CELL / g
            d.rectangle([round(x * s), round(y * s), round((x + 1) * s) - 1, round((y + 1) * s) - 1],
                        outline=(255, 0, 0), width=2)
            panels.append(np.asarray(im))
        label = Image.new("RGB", (120, CELL), "white")
        ImageDraw.Draw(label).text((6, CELL // 2 - 6), word.strip(), fill="black", font=font)
        rows.append(np.concatenate([np.asarray(label)] + panels, 1))
    if not rows:
        raise UserError("no words to draw")
    head = Image.new("RGB", (rows[0].shape[1], 34), "white")
    ImageDraw.Draw(head).multiline_text((6, 3), "\n".join(textwrap.wrap(text, 80)[:2]), fill="black", font=font)
    sheet = np.concatenate([np.asarray(head)] + rows, 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return out
