"""Image-side transforms shared by training and generation: square letterboxing,
sketches (Canny edges, appendix A) and partial images (a crop keeping 25% of the area)."""
from __future__ import annotations

import math

import cv2
import numpy as np

CANNY_LOW, CANNY_HIGH = 60, 140


def letterbox(img: np.ndarray, size: int, fill: int | tuple = 255, nearest: bool = False) -> np.ndarray:
    """Fit `img` (H, W[, C]) into a size x size square, centred, padding with `fill`."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    out = np.empty((size, size) + img.shape[2:], dtype=img.dtype)
    out[...] = fill
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


def sketch(img: np.ndarray, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 edge map in {0, 255}."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.Canny(gray, low, high)


def partial_box(rng: np.random.Generator, h: int, w: int, keep: float = 0.25) -> tuple[int, int, int, int]:
    """A random box (x0, y0, x1, y1) covering `keep` of the area, aspect ratio in [1/2, 2]."""
    ratio = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    bw = min(w, max(1, round(math.sqrt(keep * h * w * ratio))))
    bh = min(h, max(1, round(keep * h * w / bw)))
    x0 = int(rng.integers(0, w - bw + 1))
    y0 = int(rng.integers(0, h - bh + 1))
    return x0, y0, x0 + bw, y0 + bh


def partial(img: np.ndarray, box: tuple[int, int, int, int], fill: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Blank everything outside `box` -> (partial image, keep-mask (H, W) bool)."""
    x0, y0, x1, y1 = box
    keep = np.zeros(img.shape[:2], bool)
    keep[y0:y1, x0:x1] = True
    out = np.full_like(img, fill)
    out[keep] = img[keep]
    return out, keep
