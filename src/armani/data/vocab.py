"""SynthFashion's attribute vocabulary: categories, colours, patterns, and the words
captions use for them. Kept apart from the renderer so captions, the attribute judge
and tests share one source of truth."""
from __future__ import annotations

import re

CATEGORIES: tuple[str, ...] = (
    "t-shirt", "tank top", "shirt", "sweater", "hoodie", "jacket", "coat",
    "dress", "skirt", "trousers", "shorts",
)
TOPS = ("t-shirt", "tank top", "shirt", "sweater", "hoodie", "jacket", "coat")
BOTTOMS = ("skirt", "trousers", "shorts")

#: Named garment colours (RGB). Hardware colours (gold, silver) are for buttons and zips.
COLORS: dict[str, tuple[int, int, int]] = {
    "black": (32, 32, 36),
    "white": (246, 246, 242),
    "grey": (130, 130, 134),
    "navy": (26, 36, 88),
    "blue": (40, 104, 204),
    "red": (200, 30, 36),
    "green": (36, 132, 64),
    "yellow": (242, 204, 44),
    "pink": (242, 146, 184),
    "purple": (112, 52, 144),
    "orange": (242, 122, 32),
    "brown": (112, 72, 42),
    "beige": (216, 196, 160),
}
HARDWARE_COLORS: dict[str, tuple[int, int, int]] = {
    "gold": (212, 172, 56),
    "silver": (196, 196, 206),
}
ALL_COLORS = {**COLORS, **HARDWARE_COLORS}
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "checked")

#: Caption nouns per category. A noun may imply parts ("hooded"): the caption builder
#: only uses a noun whose implied parts are present.
NOUNS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("T-shirt", "tee", "t-shirt"),
    "tank top": ("tank top", "vest top", "sleeveless top"),
    "shirt": ("shirt", "blouse", "button-up shirt"),
    "sweater": ("sweater", "jumper", "pullover"),
    "hoodie": ("hoodie", "hooded sweatshirt"),
    "jacket": ("jacket",),
    "coat": ("coat", "overcoat"),
    "dress": ("dress", "frock"),
    "skirt": ("skirt",),
    "trousers": ("trousers", "pants", "slacks"),
    "shorts": ("shorts",),
}

#: Mask labels that a category noun names by itself ("dress" covers bodice and skirt).
NOUN_LABELS: dict[str, frozenset[str]] = {
    **{c: frozenset({"body"}) for c in TOPS},
    "dress": frozenset({"body", "skirt"}),
    "skirt": frozenset({"skirt"}),
    "trousers": frozenset({"leg"}),
    "shorts": frozenset({"leg"}),
}

#: Word patterns that name a mask label in a caption (lowercase text).
PART_WORDS: dict[str, str] = {
    "sleeve": r"\bsleeve(s|d)?\b",
    "collar": r"\bcollar(s|ed)?\b",
    "lapel": r"\blapels?\b",
    "hood": r"\bhood(s|ed)?\b",
    "cuff": r"\bcuffs?\b",
    "button": r"\bbutton(s|ed)?\b",
    "zipper": r"\bzip(s|per|pers|ped)?\b",
    "pocket": r"\bpockets?\b",
    "waistband": r"\b(waistband|belt|belted)\b",
    "logo": r"\b(logo|emblem)\b",
    "skirt": r"\bskirts?\b",
    "hem": r"\bhem\b",
}
_PART_RE = {k: re.compile(v) for k, v in PART_WORDS.items()}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def parts_named(caption: str, category: str | None = None) -> set[str]:
    """Mask labels a caption names: by part words, plus the labels its category noun covers."""
    text = caption.lower()
    found = {label for label, rx in _PART_RE.items() if rx.search(text)}
    if category is not None:
        found |= NOUN_LABELS[category]
    return found

#: Parts the attribute judge reports as present or absent (mask labels a caption can name).
JUDGE_PARTS: tuple[str, ...] = ("sleeve", "collar", "lapel", "hood", "cuff", "button", "zipper", "pocket",
                                "waistband", "logo", "hem")
