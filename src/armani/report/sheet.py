"""Image sheets: one table renderer (`table`: rows of panels under a header line) for the
contact sheets of generations (the conditions beside the results, one row per prompt) and of
datasets (`armani data show`), and the grid of originals above their reconstructions."""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL = 128
TEXT_W = 240


@dataclass
class Row:
    title: str                       # e.g. the task name
    text: str | None                 # the prompt
    sketch: np.ndarray | None        # (S, S) edge map, edges 255
    partial: np.ndarray | None       # (S, S, 3)
    samples: np.ndarray              # (n, S, S, 3)


def label_font(size: int = 13):
    """Pillow's own font at a size whose spaces show (at its default size 10 a space is 2 px and
    "no sketch" reads "nosketch")."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, whose spaces are wide
        return ImageFont.load_default()


def _panel(img: np.ndarray | None, label: str, font) -> np.ndarray:
    if img is None:
        im = Image.new("RGB", (PANEL, PANEL), (235, 235, 235))
        ImageDraw.Draw(im).text((8, PANEL // 2 - 6), label, fill=(120, 120, 120), font=font)
        return np.asarray(im)
    if img.ndim == 2:
        img = np.repeat((255 - img)[..., None], 3, 2)  # dark lines on white
    return np.asarray(Image.fromarray(img).resize((PANEL, PANEL), Image.NEAREST))


def text_panel(lines: list[str], width: int, height: int = PANEL, font=None) -> np.ndarray:
    """A white (height, width, 3) panel with the lines of text at its top left."""
    txt = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(txt).multiline_text((6, 6), "\n".join(lines), fill="black", font=font or label_font(), spacing=3)
    return np.asarray(txt)


def table(rows: list[list[np.ndarray]], header: str, font=None) -> np.ndarray:
    """One RGB image: a header line above rows of equal-height panels, side by side; rows
    shorter than the widest are padded with white."""
    font = font or label_font()
    lines = [np.concatenate(r, 1) for r in rows]
    width = max(x.shape[1] for x in lines)
    lines = [np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines]
    head = Image.new("RGB", (width, 20), "white")
    ImageDraw.Draw(head).text((6, 3), header, fill="black", font=font)
    return np.concatenate([np.asarray(head)] + lines, 0)


def render(rows: list[Row]) -> np.ndarray:
    """-> one RGB image: prompt | sketch | partial | samples..."""
    font = label_font()
    out = []
    for r in rows:
        lines = [r.title] + textwrap.wrap(r.text or "(no prompt)", 32)[:6]
        panels = [text_panel(lines, TEXT_W, font=font), _panel(r.sketch, "no sketch", font),
                  _panel(r.partial, "no partial", font)]
        out.append(panels + [_panel(s, "", font) for s in r.samples])
    return table(out, "prompt | sketch | partial (kept cells) | samples", font)


def save_png(img: np.ndarray, path) -> None:
    Image.fromarray(img).save(path)


def pair_grid(orig, rec, cols: int = 8) -> np.ndarray:
    """Rows of originals, each followed by a row of their reconstructions; `orig` and `rec`
    are (N, C, H, W) tensors in [0, 1] (C 1 or 3)."""
    def rgb(t):
        t = t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
        return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    o, r = rgb(orig), rgb(rec)
    n, h, w, _ = o.shape
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    pad = 2
    out = np.full((rows * 2 * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        rr, cc = divmod(i, cols)
        y, x = pad + rr * 2 * (h + pad), pad + cc * (w + pad)
        out[y:y + h, x:x + w] = o[i]
        out[y + h + pad:y + 2 * h + pad, x:x + w] = r[i]
    return out
