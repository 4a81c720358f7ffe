"""Garment colour, read from pixels alone: no trained network is involved.

`main_colour` names the main colour of a garment image with one of SynthFashion's 13
colour names. Garment pixels are the pixels that differ from the backdrop (estimated from
the image border) by more than `BACKDROP_DE` in CIELAB; each is given the nearest named
colour in CIELAB (hue, chroma and lightness: what separates navy from blue, beige from
brown), under the renderer's range of shading, and the majority wins. A garment that barely
differs from the light backdrop is white. `colour_error` is the CIEDE2000 difference of the
mean garment colour of two images over the same pixels: what a reconstruction changed.

The colour conversions (sRGB, D65) and CIEDE2000 (Sharma, Wu and Dalal, 2005) are written
out here in numpy.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..colourspace import D65_WHITE, SRGB_TO_XYZ
from ..data.vocab import COLORS

#: Colour names in a fixed order (SynthFashion's main colours).
NAMES: tuple[str, ...] = tuple(COLORS)
#: CIELAB distance from the backdrop above which a pixel counts as garment.
BACKDROP_DE = 12.0
#: Below this share of garment pixels the garment is taken to be white (it blends into the backdrop).
MIN_GARMENT = 0.04
_SHADES = (0.8, 0.9, 1.0, 1.05)  # the renderer's light and folds scale colours by about this much


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in 0..255 -> (..., 3) CIELAB (D65)."""
    c = np.asarray(rgb, np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = c @ np.array(SRGB_TO_XYZ).T / np.array(D65_WHITE)
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of (..., 3) CIELAB arrays (kL = kC = kH = 1)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar ** 7 / (cbar ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dlp, dcp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbar, cbarp = (l1 + l2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbar = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, hsum + 360, hsum - 360), hsum) / 2
    hbar = np.where(c1p * c2p == 0, hsum, hbar)
    t = (1 - 0.17 * np.cos(np.radians(hbar - 30)) + 0.24 * np.cos(np.radians(2 * hbar))
         + 0.32 * np.cos(np.radians(3 * hbar + 6)) - 0.20 * np.cos(np.radians(4 * hbar - 63)))
    sl = 1 + 0.015 * (lbar - 50) ** 2 / np.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    rt = (-2 * np.sqrt(cbarp ** 7 / (cbarp ** 7 + 25.0 ** 7))
          * np.sin(np.radians(60 * np.exp(-(((hbar - 275) / 25) ** 2)))))
    return np.sqrt((dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhp / sh) ** 2 + rt * (dcp / sc) * (dhp / sh))


def _prototypes() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.array([[min(255.0, v * s) for v in COLORS[n]] for n in NAMES for s in _SHADES])
    return rgb_to_lab(rgb), np.repeat(np.arange(len(NAMES)), len(_SHADES))


_PROTO_LAB, _PROTO_NAME = _prototypes()


def garment_pixels(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of an (H, W, 3) uint8 image that differ from its backdrop, the
    median colour of its outermost ring of pixels."""
    lab = rgb_to_lab(image)
    ring = np.concatenate([lab[0], lab[-1], lab[1:-1, 0], lab[1:-1, -1]])
    backdrop = np.median(ring, 0)
    return np.linalg.norm(lab - backdrop, axis=-1) > BACKDROP_DE


def colour_votes(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(13,) share of garment pixels nearest each named colour (all zero when the image has
    too few garment pixels). `mask`: the garment pixels when known (a dataset's part mask > 0)."""
    image = np.asarray(image)
    sel = garment_pixels(image) if mask is None else np.asarray(mask, bool)
    votes = np.zeros(len(NAMES))
    if sel.mean() < MIN_GARMENT:
        return votes
    lab = rgb_to_lab(image[sel])
    d = ((lab[:, None, :] - _PROTO_LAB[None]) ** 2).sum(-1)
    names = _PROTO_NAME[d.argmin(1)]
    np.add.at(votes, names, 1.0)
    return votes / len(names)


def main_colour(image: np.ndarray, mask: np.ndarray | None = None) -> str:
    """The garment's main colour name (one of `NAMES`)."""
    v = colour_votes(image, mask)
    return "white" if not v.any() else NAMES[int(v.argmax())]


def colour_error(original: np.ndarray, other: np.ndarray, mask: np.ndarray) -> float:
    """CIEDE2000 between the mean CIELAB colour of `original` and of `other` over the
    garment pixels `mask` (both (H, W, 3) uint8)."""
    sel = np.asarray(mask, bool)
    if not sel.any():
        return float("nan")
    a = rgb_to_lab(original[sel]).mean(0)
    b = rgb_to_lab(other[sel]).mean(0)
    return float(ciede2000(a, b))


# --- the generation check -----------------------------------------------------------------

_PROMPT_NOUNS = ("T-shirt", "dress", "jacket", "skirt", "trousers", "shirt", "sweater", "hoodie", "coat",
                 "shorts", "tank top")
_PLURAL = ("trousers", "shorts")


def _prompt(name: str, noun: str) -> str:
    art = "" if noun in _PLURAL else ("an " if name[0] in "aeiou" else "a ")
    return f"{art}{name} {noun}"


def colour_prompts(all_nouns: bool = False) -> list[tuple[str, str]]:
    """(colour, prompt) for each of the 13 colours, with the garment nouns in turn:
    "a red T-shirt", "black trousers", ...; with `all_nouns`, every colour with every one of
    the 11 nouns (143 prompts, colour by colour)."""
    if all_nouns:
        return [(name, _prompt(name, noun)) for name in NAMES for noun in _PROMPT_NOUNS]
    return [(name, _prompt(name, _PROMPT_NOUNS[i % len(_PROMPT_NOUNS)])) for i, name in enumerate(NAMES)]


def evaluate_colours(model, samples: int = 4, seed: int = 0, progress=None, all_nouns: bool = False) -> dict:
    """Text-only generation for `colour_prompts(all_nouns)`, `samples` images each (prompt i
    seeded with seed * 1000 + i); the main colour of each image read by `main_colour`. `model`:
    a loaded ArmaniPipeline or anything `pipeline.load` accepts. Returns the overall accuracy, one
    row per colour (its prompts' samples together) and what each sample came out as.

    With one prompt per colour, a prompt tends to come out right or wrong as a whole, so the
    figure moves with the choice of noun as much as with the model; `all_nouns` spreads the
    same number of samples over 11 nouns per colour for a steadier figure."""
    from ..inference.pipeline import ArmaniPipeline, load
    g = model if isinstance(model, ArmaniPipeline) else load(model)
    rows: dict[str, dict] = {}
    for i, (name, prompt) in enumerate(colour_prompts(all_nouns)):
        imgs = g(prompt, n=samples, seed=seed * 1000 + i).images
        row = rows.setdefault(name, {"colour": name, "prompt": prompt, "got": []})
        row["got"] += [main_colour(im) for im in imgs]
        if progress:
            progress(1)
    for r in rows.values():
        r["accuracy"] = sum(c == r["colour"] for c in r["got"]) / len(r["got"])
        if all_nouns:
            r["prompt"] = _prompt(r["colour"], "<noun>")
    total = sum(len(r["got"]) for r in rows.values())
    return {"accuracy": sum(r["accuracy"] * len(r["got"]) for r in rows.values()) / total, "samples": total,
            "samples_per_prompt": samples, "prompts": len(colour_prompts(all_nouns)), "seed": seed,
            "sampling": asdict(g.sampling), "judge": "pixels: nearest named colour in CIELAB",
            "colours": list(rows.values())}
