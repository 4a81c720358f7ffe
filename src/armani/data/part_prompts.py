"""Prompt pairs for the part-control test: one garment described twice, once naming part p and
once not, the same otherwise.

`optional_parts(category)` are the parts SynthFashion draws on some garments of a category and
not on others (a shirt always has sleeves, so naming them says nothing; a dress may or may
not). `with_part` adds a part to a garment's attributes and takes out what the renderer
never draws beside it (a hood replaces the collar; a top closes with a zip or
buttons, not both), and `prompt_pair` writes the two captions from one set of phrases.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .captions import _color_phrase, _join, _length_adj, _np, part_phrases
from .synth import _SPECS
from .vocab import BOTTOMS, CATEGORIES, COLORS, JUDGE_PARTS, NOUNS, parts_named


def _p(spec: dict, key: str) -> float:
    return float(spec.get(key, 0))


def optional_parts(category: str) -> tuple[str, ...]:
    """The judged parts that some garments of `category` have and others lack (from the
    renderer's probabilities)."""
    s = _SPECS[category]
    sleeves, collars = s.get("sleeve", {"none": 1}), s.get("collar", {"none": 1})
    btn = s.get("buttons", (0, 0, 0))[0]
    opt = {
        "sleeve": "none" in sleeves and len(sleeves) > 1,
        # a hood or lapel replaces the collar, so a collar that is always drawn is optional then
        "collar": any(k != "none" for k in collars) and ("none" in collars or _p(s, "hood") > 0
                                                          or _p(s, "lapel") > 0),
        "lapel": 0 < _p(s, "lapel") < 1,
        "hood": 0 < _p(s, "hood") < 1,
        "cuff": 0 < _p(s, "cuffs") and "long" in sleeves,
        # a zip on a top replaces the buttons
        "button": 0 < btn and (btn < 1 or (category not in BOTTOMS and _p(s, "zipper") > 0)),
        "zipper": 0 < _p(s, "zipper") < 1,
        "pocket": 0 in s.get("pockets", {0: 1}) and len(s.get("pockets", {})) > 1,
        "waistband": category not in BOTTOMS and 0 < _p(s, "belt") < 1,
        "logo": 0 < _p(s, "logo") < 1,
        "hem": 0 < _p(s, "hem") < 1,
    }
    return tuple(p for p in JUDGE_PARTS if opt[p])


OPTIONAL_PARTS: dict[str, tuple[str, ...]] = {c: optional_parts(c) for c in CATEGORIES}


def _other(color: str, options: tuple[str, ...]) -> str:
    return next(c for c in options if c != color)


def with_part(a: dict, parts: list[str], part: str) -> tuple[dict[str, Any], list[str]]:
    """A copy of attributes `a` and present labels `parts` with `part` added (and the parts
    that cannot go with it taken out); a part the garment has is kept as it is."""
    a, present = dict(a), set(parts)
    cat = a["category"]
    if part in present:  # keep its own colour, count, kind
        return a, sorted(present)
    if part == "sleeve":
        a["sleeve"] = "short" if "short" in _SPECS[cat].get("sleeve", {}) else "long"
    elif part == "collar":
        a["collar"] = next(k for k in _SPECS[cat].get("collar", {}) if k != "none")
        a["hood"], a["lapel"] = False, False
        present -= {"hood", "lapel"}
    elif part in ("lapel", "hood"):
        other = "hood" if part == "lapel" else "lapel"
        a[part], a[other], a["collar"] = True, False, "none"
        present -= {"collar", other}
    elif part == "cuff":
        a["cuffs"], a["cuff_color"] = True, a["color"]
        if a["sleeve"] != "long":
            a["sleeve"] = "long"
            present.add("sleeve")
    elif part == "button":
        _, lo, hi = _SPECS[cat].get("buttons", (0, 1, 1))
        a["buttons"], a["button_color"] = (lo + hi) // 2, _other(a["color"], ("white", "black"))
        if cat not in BOTTOMS:
            a["zipper"], a["zipper_color"] = False, None
            present.discard("zipper")
    elif part == "zipper":
        a["zipper"], a["zipper_color"] = True, "silver"
        if cat not in BOTTOMS:
            a["buttons"], a["button_color"] = 0, None
            present.discard("button")
    elif part == "pocket":
        a["pockets"] = max(_SPECS[cat].get("pockets", {1: 1}))
    elif part == "waistband":
        a["belt"], a["belt_color"], a["waistband"] = True, _other(a["color"], tuple(COLORS)), True
    elif part == "logo":
        a["logo"], a["logo_color"] = True, _other(a["color"], ("white", "black"))
    elif part == "hem":
        a["hem"] = True
    else:
        raise ValueError(f"not a judged part: {part!r}")
    present.add(part)
    return a, sorted(present)


def prompt_pair(a: dict, parts: list[str], part: str, seed: int = 0) -> tuple[str, str]:
    """(caption naming `part`, caption not naming it) for the garment with attributes `a` and
    present labels `parts`: the detailed caption of the garment with the part, and the same
    caption with the part's phrase taken out."""
    garment, present = with_part(a, parts, part)
    rng = np.random.default_rng(seed)
    phrases = part_phrases(garment, present, rng)
    adj, after = _color_phrase(garment, rng)
    noun = next(n for n in NOUNS[a["category"]] if not parts_named(n) - {"skirt"})
    head = _np(adj, _length_adj(garment) + noun, np.random.default_rng(seed))

    def caption(keys: list[str]) -> str:
        extras = ([after] if after else []) + [phrases[k] for k in keys]
        text = head + " with " + (_join(extras) if extras else "a plain front")
        return text[0].upper() + text[1:]

    keys = list(phrases)
    return caption(keys), caption([k for k in keys if k != part])
