"""Does a generation mode follow its condition? Figures read from the pixels, each beside its
ceiling (the same figure for the real image's stage-1 reconstruction).

- `silhouette_iou`: the garment's pixels in the sample (everything that differs from its
  backdrop, `colour.garment_pixels`) against the garment the condition was taken from (its
  part mask > 0 when the dataset has masks, else its own pixels read the same way). The
  figure of the sketch modes; in the partial modes it says whether the sample is a whole
  garment of the original's shape, and in the text modes it is the level a sketch must beat.
- `kept_psnr` and `kept_colour_error` (partial modes): the sample against the original on the
  kept token cells, PSNR in dB and the CIEDE2000 difference of their mean colours.
- `colour_accuracy` (text modes): the share of samples whose main colour, read from the pixels
  (`colour.main_colour`), is the colour the caption names (solid garments whose caption names
  one).
- `category_accuracy` (text modes, with an attribute judge): the share of samples whose
  category the judge reads as the caption's garment's (`eval.judge`; the packaged SynthFashion
  judge in the quickstart). Only where the judge reads the category of real images right
  often enough (`judge.TRUST`); else it is left out.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..data.vocab import CATEGORIES
from .colour import colour_error, garment_pixels, main_colour

FIDELITY = ("silhouette_iou", "kept_psnr", "kept_colour_error", "colour_accuracy", "category_accuracy")


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks; 1 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def masked_psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """PSNR (dB, peak 255) of two (H, W, 3) uint8 images over the pixels `where`; nan when none."""
    sel = np.asarray(where, bool)
    if not sel.any():
        return float("nan")
    mse = float(((a[sel].astype(np.float64) - b[sel].astype(np.float64)) ** 2).mean())
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def kept_pixels(cond, image_empty: int, size: int) -> np.ndarray | None:
    """(S, S) bool: the pixels of the token cells a partial condition keeps; None without one."""
    tok = cond.partial_tokens[0]
    keep = (tok != image_empty).numpy()
    if not keep.any():
        return None
    grid = round(len(keep) ** 0.5)
    cell = size // grid
    return np.kron(keep.reshape(grid, grid), np.ones((cell, cell), bool)).astype(bool)


def named_colour(caption: str, attributes: dict) -> str | None:
    """The colour a caption names for a solid garment, else None."""
    from .judge import prompted
    if not attributes.get("category"):
        return None
    want = prompted(caption, attributes)
    return attributes["color"] if "color" in want else None


@torch.no_grad()
def reconstructions(g, prompts, fuse: bool = True, batch: int = 32) -> np.ndarray:
    """(N, S, S, 3) uint8: each prompt's real image through stage 1 (fused with its caption
    where the codebook fuses text and `fuse`, as a partial image is encoded when the mode has
    a caption), the ceiling of every figure here."""
    from ..data.dataset import to_unit
    from ..inference.pipeline import decode_tokens
    st, c = g.image_tokenizer, g.transformer.cfg
    out = []
    for i in range(0, len(prompts), batch):
        part = prompts[i:i + batch]
        x = torch.stack([to_unit(p.image) for p in part]).to(g.device)
        if fuse and st.vq.cfg.fusion == "maskclip" and st.maskclip is not None:
            enc = [g.tokenizer.encode(p.caption, c.text_len) for p in part]
            ids = torch.from_numpy(np.stack([e[0] for e in enc])).to(g.device)
            lengths = torch.tensor([e[1] for e in enc], device=g.device)
            codes = st.encode(x, ids, lengths)
        else:
            codes = st.vq.encode(x)[1]
        out.append(decode_tokens(g, codes.flatten(1)))
    return np.concatenate(out)


def per_image(images: np.ndarray, prompts, conds, samples: int, image_empty: int,
              judge=None) -> dict[str, np.ndarray]:
    """Every figure of FIDELITY for each image (prompt-major, `samples` a prompt); nan where a
    figure does not apply (no kept cells, no named colour, no judge: `judge` is an
    `eval.judge.Judge` trusted to read the category)."""
    n = len(images)
    res = {k: np.full(n, np.nan) for k in FIDELITY}
    size = images.shape[1]
    read = judge.read(images)["category"] if judge is not None and any(c.text for c in conds) else None
    for j in range(n):
        p, cond = prompts[j // samples], conds[j // samples]
        truth = p.silhouette if p.silhouette is not None else garment_pixels(p.image)
        res["silhouette_iou"][j] = silhouette_iou(garment_pixels(images[j]), truth)
        kept = kept_pixels(cond, image_empty, size)
        if kept is not None:
            res["kept_psnr"][j] = masked_psnr(images[j], p.image, kept)
            res["kept_colour_error"][j] = colour_error(p.image, images[j], kept)
        colour = named_colour(p.caption, p.attributes) if cond.text else None
        if colour is not None:
            res["colour_accuracy"][j] = float(main_colour(images[j]) == colour)
        if read is not None and cond.text and p.attributes.get("category") in CATEGORIES:
            res["category_accuracy"][j] = float(read[j] == CATEGORIES.index(p.attributes["category"]))
    return res
