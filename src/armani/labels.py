"""The part vocabulary: 15 mask labels (background + 14 garment parts), as the paper's 15.

This is the one place that names the labels and their colours. Every importer maps its
source labels onto these ids with an explicit table (see ``armani.data.importers``).
"""
from __future__ import annotations

import numpy as np

#: label id -> name. Order is the on-disk encoding of every mask; never reorder.
LABELS: tuple[str, ...] = (
    "background",  # 0
    "body",        # 1  torso of tops, bodice of dresses, main panel of outerwear
    "sleeve",      # 2
    "collar",      # 3
    "lapel",       # 4
    "hood",        # 5
    "cuff",        # 6
    "button",      # 7  small
    "zipper",      # 8  small
    "pocket",      # 9  small
    "waistband",   # 10 waistband or belt, small
    "logo",        # 11 logo, print or applique, small
    "skirt",       # 12 skirt, or the skirt of a dress
    "leg",         # 13 trouser and shorts legs
    "hem",         # 14 ribbed hem band
)
NUM_LABELS = len(LABELS)
LABEL_ID = {name: i for i, name in enumerate(LABELS)}

#: Labels that cover a small share of a garment; they are reported apart in evaluations.
SMALL_PARTS = ("button", "zipper", "pocket", "waistband", "logo")

#: One RGB colour per label, for overlays and palette PNGs.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (128, 128, 128),
    (31, 119, 180),
    (255, 127, 14),
    (140, 86, 75),
    (148, 103, 189),
    (23, 190, 207),
    (214, 39, 40),
    (255, 215, 0),
    (44, 160, 44),
    (227, 119, 194),
    (0, 255, 127),
    (188, 189, 34),
    (70, 50, 160),
    (255, 152, 150),
)
assert len(PALETTE) == NUM_LABELS


def palette_array() -> np.ndarray:
    """(NUM_LABELS, 3) uint8 array of the label colours."""
    return np.asarray(PALETTE, dtype=np.uint8)


def flat_palette() -> list[int]:
    """The palette as PIL wants it for mode "P" images (768 entries)."""
    flat = [c for rgb in PALETTE for c in rgb]
    return flat + [0] * (768 - len(flat))


def colorize(mask: np.ndarray) -> np.ndarray:
    """Label map (H, W) -> RGB image (H, W, 3) uint8."""
    pal = palette_array()
    return pal[np.clip(mask, 0, NUM_LABELS - 1)]
