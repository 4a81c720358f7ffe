"""SynthFashion: procedural product-style garment images with exact part masks.

Each sample is drawn from its own random stream, seeded by (seed, index), so the output
does not depend on the number of worker processes and the same arguments give
byte-identical files. Geometry lives in a unit square (y down) and is scaled to the
image size. Labels are rasterised at twice the size; the image is coloured there and
downsampled (anti-aliasing), and the mask takes the majority label of the same 2 x 2
sub-pixels, so each mask pixel names what its image pixel mostly shows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import UserError
from ..labels import LABEL_ID, LABELS
from .vocab import ALL_COLORS, BOTTOMS, CATEGORIES, COLORS, HARDWARE_COLORS, PATTERNS

#: (category, part label) pairs that never appear in `train`: they form `test_holdout`.
DEFAULT_HOLDOUT: tuple[tuple[str, str], ...] = (
    ("t-shirt", "zipper"),
    ("dress", "hood"),
    ("sweater", "pocket"),
    ("skirt", "button"),
    ("shorts", "logo"),
)

_MAIN = tuple(COLORS)
_HARDWARE = ("white", "black", "gold", "silver", "brown")
_FABRIC = ("body", "sleeve", "skirt", "leg", "hood", "lapel")  # labels that carry the pattern


def parse_holdout(spec: str | None) -> tuple[tuple[str, str], ...]:
    """"t-shirt:zipper,dress:hood" -> pairs; None or "default" -> DEFAULT_HOLDOUT; "none" -> ()."""
    if spec is None or spec == "default":
        return DEFAULT_HOLDOUT
    if spec.strip().lower() == "none":
        return ()
    pairs = []
    for item in spec.split(","):
        cat, sep, part = item.strip().rpartition(":")
        if not sep or cat not in CATEGORIES or part not in LABEL_ID or part == "background":
            raise UserError(
                f"bad hold-out item {item!r}: expected CATEGORY:PART with CATEGORY in "
                f"{', '.join(CATEGORIES)} and PART in {', '.join(LABELS[1:])}")
        pairs.append((cat, part))
    return tuple(pairs)


# ---------------------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, options: dict[Any, float]) -> Any:
    keys = list(options)
    p = np.asarray([options[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _other_color(rng: np.random.Generator, avoid: str, pool: tuple[str, ...] = _MAIN) -> str:
    choices = [c for c in pool if c != avoid]
    return choices[int(rng.integers(len(choices)))]


# Per category: probabilities of each option. Hold-out combinations are possible here on
# purpose (t-shirt with a zip, ...): samples that draw one go to `test_holdout`.
_SPECS: dict[str, dict[str, Any]] = {
    "t-shirt": dict(sleeve={"short": .75, "long": .25}, collar={"none": .8, "round": .1, "pointed": .1},
                    zipper=.15, buttons=(.1, 2, 3), pockets={0: .75, 1: .25}, logo=.5, cuffs=.1),
    "tank top": dict(sleeve={"none": 1}, collar={"none": 1}, zipper=0, buttons=(.1, 2, 4),
                     pockets={0: .8, 1: .2}, logo=.4),
    "shirt": dict(sleeve={"short": .3, "long": .7}, collar={"pointed": .7, "stand": .3},
                  buttons=(1, 4, 7), pockets={0: .4, 1: .4, 2: .2}, logo=.15, cuffs=.4),
    "sweater": dict(sleeve={"long": 1}, collar={"none": .7, "round": .15, "stand": .15}, hem=.8,
                    cuffs=.8, pockets={0: .75, 1: .25}, logo=.3, buttons=(.15, 3, 5)),
    "hoodie": dict(sleeve={"long": 1}, hood=1, zipper=.5, pockets={0: .3, 1: .7}, logo=.5,
                   hem=.8, cuffs=.8),
    "jacket": dict(sleeve={"long": 1}, collar={"none": .2, "pointed": .4, "stand": .4}, hood=.25,
                   zipper=.6, buttons=(.4, 3, 5), pockets={0: .3, 2: .7}, logo=.25, cuffs=.5),
    "coat": dict(sleeve={"long": 1}, collar={"pointed": .3, "stand": .2, "none": .5}, lapel=.5,
                 hood=.15, zipper=.2, buttons=(.8, 2, 6), pockets={0: .3, 2: .7}, belt=.4, logo=.05),
    "dress": dict(sleeve={"none": .35, "short": .4, "long": .25}, collar={"none": .7, "round": .2, "pointed": .1},
                  hood=.12, buttons=(.3, 3, 6), pockets={0: .7, 2: .3}, belt=.4, logo=.1),
    "skirt": dict(buttons=(.2, 3, 6), pockets={0: .7, 2: .3}, belt=.3, logo=.15, zipper=.1),
    "trousers": dict(zipper=.6, buttons=(.5, 1, 1), pockets={0: .3, 2: .7}, belt=.4, logo=.1),
    "shorts": dict(zipper=.5, buttons=(.4, 1, 1), pockets={0: .4, 2: .6}, belt=.3, logo=.15),
}


def sample_attributes(rng: np.random.Generator, category: str | None = None) -> dict[str, Any]:
    """Draw one garment's attributes (JSON-serialisable)."""
    cat = category or CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    spec = _SPECS[cat]
    color = _MAIN[int(rng.integers(len(_MAIN)))]
    pattern = _pick(rng, {"solid": .55, "striped": .17, "dotted": .14, "checked": .14})
    a: dict[str, Any] = {"category": cat, "color": color, "pattern": pattern,
                         "pattern_color": None if pattern == "solid" else _other_color(rng, color)}
    a["sleeve"] = _pick(rng, spec["sleeve"]) if "sleeve" in spec else None
    a["collar"] = _pick(rng, spec.get("collar", {"none": 1}))
    a["lapel"] = bool(rng.random() < spec.get("lapel", 0))
    if a["lapel"]:
        a["collar"] = "none"  # a notched lapel replaces the collar here
    a["hood"] = bool(rng.random() < spec.get("hood", 0))
    if a["hood"]:
        a["collar"], a["lapel"] = "none", False
    a["zipper"] = bool(rng.random() < spec.get("zipper", 0))
    a["zipper_color"] = _HARDWARE[int(rng.integers(len(_HARDWARE)))] if a["zipper"] else None
    p_btn, lo, hi = spec.get("buttons", (0, 0, 0))
    n_btn = int(rng.integers(lo, hi + 1)) if rng.random() < p_btn else 0
    if a["zipper"] and cat not in BOTTOMS:
        n_btn = 0  # one front closure on tops
    a["buttons"] = n_btn
    a["button_color"] = _other_color(rng, color, _HARDWARE) if n_btn else None
    a["pockets"] = int(_pick(rng, spec.get("pockets", {0: 1})))
    a["belt"] = bool(rng.random() < spec.get("belt", 0))
    a["belt_color"] = _other_color(rng, color) if a["belt"] else None
    a["waistband"] = cat in BOTTOMS or a["belt"]
    a["logo"] = bool(rng.random() < spec.get("logo", 0))
    a["logo_color"] = _other_color(rng, color) if a["logo"] else None
    a["cuffs"] = a["sleeve"] == "long" and bool(rng.random() < spec.get("cuffs", 0))
    a["cuff_color"] = (color if rng.random() < .5 else _other_color(rng, color)) if a["cuffs"] else None
    a["hem"] = bool(rng.random() < spec.get("hem", 0))
    a["length"] = _pick(rng, {"mini": .4, "midi": .6}) if cat in ("skirt", "dress") else None
    return a


# ---------------------------------------------------------------------------------------
# Geometry: a list of (label, kind, data) shapes in draw order, in unit coordinates
# ---------------------------------------------------------------------------------------

@dataclass
class _Shapes:
    items: list

    def poly(self, label: str, pts) -> None:
        self.items.append((label, "poly", np.asarray(pts, dtype=np.float64)))

    def ellipse(self, label: str, cx: float, cy: float, rx: float, ry: float) -> None:
        t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        self.poly(label, np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1))

    def dot(self, label: str, cx: float, cy: float, r: float) -> None:
        self.items.append((label, "dot", (cx, cy, r)))

    def rect(self, label: str, x0: float, y0: float, x1: float, y1: float) -> None:
        self.poly(label, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def _mirror(pts, cx=0.5):
    return [(2 * cx - x, y) for x, y in pts]


def _lerp(p, q, t):
    return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)


def _band(p0, p1, q0, q1, t0, t1):
    """Quad across a strip bounded by edges p0->p1 and q0->q1, between fractions t0..t1."""
    return [_lerp(p0, p1, t0), _lerp(p0, p1, t1), _lerp(q0, q1, t1), _lerp(q0, q1, t0)]


def _top_shapes(a: dict, rng: np.random.Generator, s: _Shapes) -> dict:
    cat = a["category"]
    j = lambda v: v * float(rng.uniform(-1, 1))  # noqa: E731 small geometric jitter
    cx = 0.5
    dress = cat == "dress"
    sy = (0.17 if dress else 0.20) + j(.015)
    sw = (0.14 if dress else 0.19 if cat != "coat" else 0.20) + j(.015)
    nw = 0.065 + j(.01)
    nd = (0.06 if a["collar"] == "none" else 0.035) + j(.01)
    hem_y = {"coat": 0.9, "shirt": 0.76, "jacket": 0.74, "hoodie": 0.74}.get(cat, 0.72) + j(.02)
    waist_y = 0.43 + j(.02)
    hw = sw + (0.035 if cat in ("coat", "jacket") else 0.005) + j(.01)
    arm_y = sy + (0.12 if cat == "tank top" else 0.14)
    if a["hood"]:
        s.ellipse("hood", cx, sy - 0.055, 0.105, 0.09)
    # Sleeves go under the torso.
    sl_end = {}
    for side in (-1, 1):
        if a["sleeve"] in ("short", "long"):
            sh, ap = (cx + side * (sw - 0.01), sy + 0.015), (cx + side * (sw - 0.005), arm_y)
            if a["sleeve"] == "short":
                out, inn = (cx + side * (sw + 0.11), sy + 0.13), (cx + side * (sw + 0.06), sy + 0.19)
            else:
                out, inn = (cx + side * (sw + 0.12), sy + 0.50), (cx + side * (sw + 0.04), sy + 0.51)
            s.poly("sleeve", [sh, out, inn, ap])
            sl_end[side] = (sh, out, ap, inn)
    # Torso (bodice for dresses), with a scoop or V neckline.
    bottom = waist_y if dress else hem_y
    bw = (sw - 0.02) if dress else hw
    neck = [(cx - nw, sy - 0.025), (cx - nw * 0.6, sy + nd * 0.6), (cx, sy + nd),
            (cx + nw * 0.6, sy + nd * 0.6), (cx + nw, sy - 0.025)]
    if cat == "tank top":
        left = [(cx - bw, bottom), (cx - sw + 0.02, arm_y), (cx - nw - 0.03, sy - 0.02)]
    else:
        left = [(cx - bw, bottom), (cx - sw, arm_y), (cx - sw, sy + 0.015), (cx - nw - 0.01, sy - 0.02)]
    torso = left + neck + _mirror(left[::-1])
    s.poly("body", torso)
    if dress:
        lo = 0.88 if a["length"] == "midi" else 0.66
        flare = 0.26 if a["length"] == "midi" else 0.21
        s.poly("skirt", [(cx - bw, waist_y), (cx + bw, waist_y), (cx + flare, lo), (cx - flare, lo)])
    if a["hem"] and not dress:
        s.poly("hem", [(cx - hw, hem_y - 0.04), (cx + hw, hem_y - 0.04), (cx + hw, hem_y), (cx - hw, hem_y)])
    for side, (sh, out, ap, inn) in sl_end.items():
        if a["cuffs"]:
            s.poly("cuff", _band(sh, out, ap, inn, 0.88, 1.0))
    # Neck details.
    if a["collar"] == "pointed":
        left = [(cx - nw - 0.012, sy - 0.03), (cx - 0.004, sy + nd), (cx - 0.012, sy + nd + 0.05),
                (cx - nw - 0.035, sy + 0.035)]
        s.poly("collar", left)
        s.poly("collar", _mirror(left))
    elif a["collar"] == "round":
        s.ellipse("collar", cx - 0.04, sy + 0.012, 0.045, 0.03)
        s.ellipse("collar", cx + 0.04, sy + 0.012, 0.045, 0.03)
    elif a["collar"] == "stand":
        s.poly("collar", [(cx - nw - 0.005, sy - 0.05), (cx + nw + 0.005, sy - 0.05),
                          (cx + nw, sy - 0.015), (cx, sy + 0.005), (cx - nw, sy - 0.015)])
    if a["lapel"]:
        left = [(cx - nw - 0.005, sy - 0.03), (cx - 0.006, sy + 0.21), (cx - nw - 0.07, sy + 0.09),
                (cx - nw - 0.03, sy + 0.05)]
        s.poly("lapel", left)
        s.poly("lapel", _mirror(left))
    return dict(cx=cx, sy=sy, sw=sw, nw=nw, nd=nd, hem_y=hem_y, hw=hw, waist_y=waist_y,
                bottom=(0.88 if a["length"] == "midi" else 0.66) if dress else hem_y)


def _bottom_shapes(a: dict, rng: np.random.Generator, s: _Shapes) -> dict:
    cat = a["category"]
    j = lambda v: v * float(rng.uniform(-1, 1))  # noqa: E731
    cx = 0.5
    if cat == "skirt":
        top = 0.22 + j(.02)
        w = 0.15 + j(.015)
        lo = (0.78 if a["length"] == "midi" else 0.58) + j(.02)
        flare = w + (0.12 if a["length"] == "midi" else 0.08)
        s.poly("skirt", [(cx - w, top), (cx + w, top), (cx + flare, lo), (cx - flare, lo)])
        band_top, bottom = top - 0.04, lo
        s.rect("waistband", cx - w - 0.004, band_top, cx + w + 0.004, top + 0.005)
        return dict(cx=cx, top=top, w=w, bottom=bottom, body_top=top)
    top = 0.12 + j(.02)
    w = 0.165 + j(.015)
    lo = (0.92 if cat == "trousers" else 0.52) + j(.02)
    crotch = top + 0.17
    flare = 0.012 if cat == "trousers" else 0.03
    left = [(cx - w, top), (cx + 0.002, top), (cx + 0.002, crotch), (cx - 0.02, lo), (cx - w - flare, lo)]
    s.poly("leg", left)
    s.poly("leg", _mirror(left))
    s.rect("waistband", cx - w - 0.004, top - 0.04, cx + w + 0.004, top + 0.005)
    return dict(cx=cx, top=top, w=w, bottom=lo, body_top=top)


def _details(a: dict, g: dict, s: _Shapes) -> None:
    """Small parts: pockets, belt, zipper, buttons, logo (drawn last, on top)."""
    cat, cx = a["category"], g["cx"]
    bottoms = cat in BOTTOMS
    chest_y = g["sy"] + 0.085 if not bottoms else None
    pocket_sides: list[int] = []
    if a["pockets"]:
        if cat == "hoodie":
            hy = g["hem_y"] - (0.045 if a["hem"] else 0.01)
            s.poly("pocket", [(cx - 0.1, hy - 0.13), (cx + 0.1, hy - 0.13), (cx + 0.13, hy), (cx - 0.13, hy)])
        elif cat in ("jacket", "coat"):
            y = g["hem_y"] - (0.17 if cat == "jacket" else 0.24)
            for side in (-1, 1):
                s.rect("pocket", cx + side * 0.125 - 0.045, y, cx + side * 0.125 + 0.045, y + 0.06)
        elif cat in ("trousers", "shorts"):
            y = g["top"] + 0.01
            for side in (-1, 1):
                x = cx + side * g["w"]
                s.poly("pocket", [(x, y), (x - side * 0.06, y), (x, y + 0.08)])
        elif cat in ("skirt", "dress"):
            y = (g["top"] + 0.08) if cat == "skirt" else g["waist_y"] + 0.06
            for side in (-1, 1):
                x = cx + side * (0.13 if cat == "dress" else 0.12)
                s.rect("pocket", x - 0.04, y, x + 0.04, y + 0.06)
        else:  # chest pockets
            pocket_sides = [1] if a["pockets"] == 1 else [1, -1]
            for side in pocket_sides:
                x = cx + side * 0.095
                s.rect("pocket", x - 0.04, chest_y, x + 0.04, chest_y + 0.065)
    if a["belt"] and cat in ("dress", "coat"):
        y = g["waist_y"] if cat == "dress" else g["sy"] + 0.33
        half = (g["sw"] - 0.02) if cat == "dress" else g["sw"] + 0.02
        s.rect("waistband", cx - half, y - 0.017, cx + half, y + 0.017)
    # Front closure down the centre line.
    if bottoms:
        y0, y1 = g["top"] + 0.01, g["top"] + (0.13 if cat != "skirt" else 0.12)
    else:
        y0 = g["sy"] + g["nd"] + 0.004
        y1 = (g["waist_y"] - 0.02) if cat == "dress" else (g["hem_y"] - (0.045 if a["hem"] else 0.01))
    if a["zipper"]:
        zx = cx if cat != "skirt" else cx + 0.09
        s.rect("zipper", zx - 0.01, y0, zx + 0.01, y1)
    if a["buttons"]:
        n = a["buttons"]
        if cat in ("trousers", "shorts"):
            ys, xs = [g["top"] - 0.02], [cx]
        elif cat == "skirt":
            ys = list(np.linspace(g["top"] + 0.04, g["bottom"] - 0.06, n))
            xs = [cx] * n
        else:
            ys = list(np.linspace(y0 + 0.03, y1 - 0.04, n))
            xs = [cx] * n
        for x, y in zip(xs, ys):
            s.dot("button", x, y, 0.014)
    if a["logo"]:
        if cat == "shorts":
            lx, ly = cx - g["w"] * 0.55, g["bottom"] - 0.08
        elif cat == "trousers":
            lx, ly = cx - g["w"] * 0.55, g["top"] + 0.3
        elif cat == "skirt":
            lx, ly = cx - 0.11, g["bottom"] - 0.08
        else:
            side = -1 if 1 in pocket_sides else 1
            if pocket_sides == [1, -1]:
                lx, ly = cx + 0.095, chest_y - 0.035
            else:
                lx, ly = cx + side * 0.095, chest_y + 0.03
            if cat == "hoodie" or (cat == "t-shirt" and not a["zipper"] and not a["buttons"] and not pocket_sides):
                lx, ly = cx, g["sy"] + 0.14
        s.rect("logo", lx - 0.024, ly - 0.022, lx + 0.024, ly + 0.022)


def garment_shapes(a: dict, rng: np.random.Generator) -> list:
    s = _Shapes([])
    g = _bottom_shapes(a, rng, s) if a["category"] in BOTTOMS else _top_shapes(a, rng, s)
    _details(a, g, s)
    return s.items


# ---------------------------------------------------------------------------------------
# Rasterisation
# ---------------------------------------------------------------------------------------

_SHIFT = 4  # cv2 sub-pixel bits


def _rasterize(shapes: list, size: int, offset: tuple[float, float], scale: float) -> np.ndarray:
    """Label map (size, size) uint8 from shapes drawn in order (later shapes on top)."""
    lab = np.zeros((size, size), np.uint8)
    k = size * scale * (1 << _SHIFT)
    ox, oy = offset

    def px(pts):
        p = (pts - 0.5) * k + np.array([(0.5 + ox) * size, (0.5 + oy) * size]) * (1 << _SHIFT)
        return np.round(p).astype(np.int32)

    for label, kind, data in shapes:
        v = LABEL_ID[label]
        if kind == "poly":
            cv2.fillPoly(lab, [px(data)], v, lineType=cv2.LINE_8, shift=_SHIFT)
        else:
            x, y, r = data
            c = px(np.array([[x, y]]))[0]
            rad = max(int(round(r * k)), 1 << (_SHIFT - 1))
            cv2.circle(lab, (int(c[0]), int(c[1])), rad, v, -1, lineType=cv2.LINE_8, shift=_SHIFT)
    return lab


def downsample_labels(lab: np.ndarray) -> np.ndarray:
    """(2S, 2S) label map -> (S, S): each pixel takes the most common label of its 2 x 2
    sub-pixels (ties go to the higher id, parts drawn on top), so the mask matches what
    the downsampled image shows, tiny parts included."""
    s = lab.shape[0] // 2
    v = lab.reshape(s, 2, s, 2).transpose(0, 2, 1, 3).reshape(s, s, 4).astype(np.int32)
    counts = (v[..., :, None] == v[..., None, :]).sum(-1)  # (S, S, 4)
    best = np.argmax(counts * 256 + v, axis=-1)
    return np.take_along_axis(v, best[..., None], -1)[..., 0].astype(np.uint8)


def _jitter_color(rng: np.random.Generator, name: str, amount: float = 10) -> np.ndarray:
    return np.clip(np.asarray(ALL_COLORS[name], np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _pattern_field(a: dict, rng: np.random.Generator, n: int) -> np.ndarray | None:
    """Boolean (n, n) field: True where the pattern colour shows."""
    if a["pattern"] == "solid":
        return None
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    period = float(rng.uniform(0.045, 0.07))
    phase = float(rng.uniform(0, 1))
    if a["pattern"] == "striped":
        return ((yy / period + phase) % 1.0) < 0.42
    if a["pattern"] == "checked":
        u = ((xx / (period * 1.6) + phase) % 1.0) < 0.5
        v = ((yy / (period * 1.6) + phase) % 1.0) < 0.5
        return u ^ v
    # dotted: a lattice of discs
    p = period * 1.3
    du = ((xx / p + phase) % 1.0) - 0.5
    dv = ((yy / p + phase) % 1.0) - 0.5
    return du * du + dv * dv < 0.07


def render(a: dict, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one garment: (image (size, size, 3) uint8 RGB, mask (size, size) uint8)."""
    shapes = garment_shapes(a, rng)
    scale = float(rng.uniform(0.92, 1.04))
    offset = (float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03)))
    n = 2 * size  # supersampled image
    lab = _rasterize(shapes, n, offset, scale)
    mask = downsample_labels(lab)

    main = _jitter_color(rng, a["color"])
    lut = np.zeros((len(LABELS), 3), np.float32)
    for name in _FABRIC:
        lut[LABEL_ID[name]] = main
    lut[LABEL_ID["collar"]] = main * 0.9
    lut[LABEL_ID["lapel"]] = main * 0.94
    lut[LABEL_ID["pocket"]] = main * 0.86
    cuff = _jitter_color(rng, a["cuff_color"]) if a["cuffs"] else main * 0.92
    lut[LABEL_ID["cuff"]] = cuff
    lut[LABEL_ID["hem"]] = cuff * 0.97 if a["cuffs"] else main * 0.9
    lut[LABEL_ID["waistband"]] = _jitter_color(rng, a["belt_color"]) if a["belt"] else main * 0.88
    if a["zipper"]:
        lut[LABEL_ID["zipper"]] = _jitter_color(rng, a["zipper_color"], 6)
    if a["buttons"]:
        lut[LABEL_ID["button"]] = _jitter_color(rng, a["button_color"], 6)
    if a["logo"]:
        lut[LABEL_ID["logo"]] = _jitter_color(rng, a["logo_color"])
    img = lut[lab]
    field = _pattern_field(a, rng, n)
    if field is not None:
        fabric = np.isin(lab, [LABEL_ID[x] for x in _FABRIC]) & field
        img[fabric] = _jitter_color(rng, a["pattern_color"])

    garment = lab > 0
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    # Soft light from the upper left plus a few vertical folds; fabric grain as noise.
    fold_f, fold_p = float(rng.uniform(3, 6)), float(rng.uniform(0, 2 * math.pi))
    shade = 1.06 - 0.16 * (0.6 * xx + 0.4 * yy) + 0.035 * np.sin(2 * math.pi * fold_f * xx + fold_p)
    shade += rng.normal(0, 0.018, (n, n)).astype(np.float32)
    # Seams: darken pixels whose right or lower neighbour carries another label.
    edge = np.zeros((n, n), bool)
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    shade = np.where(edge & garment, shade * 0.78, shade)
    img *= shade[..., None]

    # Background: a light, slightly warm or cool studio backdrop with a soft drop shadow.
    bg_level = float(rng.uniform(228, 250))
    tint = rng.uniform(-5, 5, 3).astype(np.float32)
    bg = (bg_level + tint)[None, None, :] * (1.0 - 0.05 * yy[..., None])
    k = max(3, (n // 16) | 1)
    shadow = cv2.GaussianBlur(garment.astype(np.float32), (k, k), 0)
    d = max(1, n // 48)
    shadow = np.roll(np.roll(shadow, d, 0), d, 1)
    bg *= (1.0 - 0.22 * shadow)[..., None]
    img = np.where(garment[..., None], img, bg)
    img = cv2.resize(np.clip(img, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    return np.round(img).astype(np.uint8), mask


def visible_attributes(a: dict, mask: np.ndarray) -> dict:
    """Drop attributes whose part got no pixel in the final mask (tiny sizes, occlusion),
    so that captions never name a part the mask lacks."""
    present = set(np.unique(mask).tolist())
    a = dict(a)

    def gone(label: str) -> bool:
        return LABEL_ID[label] not in present

    if a["sleeve"] in ("short", "long") and gone("sleeve"):
        a["sleeve"] = "none"
    if a["collar"] != "none" and gone("collar"):
        a["collar"] = "none"
    for flag, label, color in (("lapel", "lapel", None), ("hood", "hood", None), ("hem", "hem", None),
                               ("zipper", "zipper", "zipper_color"), ("logo", "logo", "logo_color"),
                               ("cuffs", "cuff", "cuff_color")):
        if a[flag] and gone(label):
            a[flag] = False
            if color:
                a[color] = None
    if a["buttons"] and gone("button"):
        a["buttons"], a["button_color"] = 0, None
    if a["pockets"] and gone("pocket"):
        a["pockets"] = 0
    if a["waistband"] and gone("waistband"):
        a["waistband"], a["belt"], a["belt_color"] = False, False, None
    return a


def present_parts(mask: np.ndarray) -> list[str]:
    return [LABELS[i] for i in np.unique(mask).tolist() if i != 0]


def make_sample(seed: int, index: int, size: int,
                holdout: tuple[tuple[str, str], ...] = DEFAULT_HOLDOUT,
                val_fraction: float = 0.05, test_fraction: float = 0.05) -> dict:
    """Everything about sample `index`: image, mask, attributes, captions and split."""
    from .captions import make_captions

    rng = np.random.default_rng([seed, index])
    attrs = sample_attributes(rng)
    image, mask = render(attrs, size, rng)
    attrs = visible_attributes(attrs, mask)
    parts = present_parts(mask)
    captions = make_captions(attrs, parts, rng)
    u = rng.random()
    if any(cat == attrs["category"] and part in parts for cat, part in holdout):
        split = "test_holdout"
    elif u < val_fraction:
        split = "val"
    elif u < val_fraction + test_fraction:
        split = "test"
    else:
        split = "train"
    return dict(image=image, mask=mask, attributes=attrs, parts=parts, captions=captions, split=split)


__all__ = ["CATEGORIES", "COLORS", "HARDWARE_COLORS", "PATTERNS", "DEFAULT_HOLDOUT", "parse_holdout",
           "sample_attributes", "render", "make_sample", "visible_attributes", "present_parts"]
