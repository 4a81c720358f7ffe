"""Natural, varied captions for SynthFashion attributes.

`make_captions` returns several paraphrases: the first is the detailed one and names
every part present in the mask; the others are shorter or reordered, with synonyms
(zip/zipper, tee/T-shirt) and varied syntax. No caption names a part the mask lacks.
"""
from __future__ import annotations

import numpy as np

from .vocab import NOUNS, NUMBER_WORDS, parts_named

PLURAL_NOUNS = frozenset({"trousers", "pants", "slacks", "shorts"})


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _np(adj: str, noun: str, rng: np.random.Generator) -> str:
    """Noun phrase with its determiner: "a red shirt", "red trousers", "a pair of red shorts"."""
    if noun in PLURAL_NOUNS:
        return _choice(rng, [f"{adj} {noun}", f"a pair of {adj} {noun}"])
    return f"{_article(adj)} {adj} {noun}"


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _count(n: int, noun: str) -> str:
    return f"a single {noun}" if n == 1 else f"{NUMBER_WORDS[n]} {noun}s"


def _color_phrase(a: dict, rng: np.random.Generator) -> tuple[str, str]:
    """(adjective before the noun, optional phrase after the noun)."""
    c, p, pc = a["color"], a["pattern"], a["pattern_color"]
    if p == "solid":
        return c, ""
    if p == "striped":
        return _choice(rng, [(f"{c} and {pc} striped", ""), (c, f"{pc} stripes")])
    if p == "checked":
        return _choice(rng, [(f"{c} and {pc} checked", ""), (f"{c} plaid", f"{pc} checks")])
    return _choice(rng, [(f"{c} polka-dot", f"{pc} dots"), (c, f"{pc} polka dots")])


def part_phrases(a: dict, parts: list[str], rng: np.random.Generator) -> dict[str, str]:
    """One phrase per mask label that is present and not covered by the category noun."""
    ph: dict[str, str] = {}
    present = set(parts)
    if "sleeve" in present:
        ph["sleeve"] = f"{a['sleeve']} sleeves"
    if "collar" in present:
        kind = {"pointed": ["pointed", "pointed"], "round": ["round", "Peter Pan"],
                "stand": ["stand", "mandarin"]}[a["collar"]]
        ph["collar"] = f"{_article(k := _choice(rng, kind))} {k} collar"
    if "lapel" in present:
        ph["lapel"] = _choice(rng, ["notched lapels", "wide lapels"])
    if "hood" in present:
        ph["hood"] = _choice(rng, ["a hood", "an attached hood"])
    if "cuff" in present:
        ph["cuff"] = f"{a['cuff_color']} cuffs" if a["cuff_color"] != a["color"] else "ribbed cuffs"
    if "button" in present:
        ph["button"] = _count(a["buttons"], f"{a['button_color']} button")
    if "zipper" in present:
        zip_word = _choice(rng, ["zipper", "zip"])
        ph["zipper"] = f"{_article(a['zipper_color'])} {a['zipper_color']} {zip_word}"
    if "pocket" in present:
        where = {"hoodie": "kangaroo ", "shirt": "chest ", "t-shirt": "chest ", "sweater": "chest ",
                 "tank top": "chest "}.get(a["category"], "")
        ph["pocket"] = (f"{_article(where or 'p')} {where}pocket" if a["pockets"] == 1
                        else f"{NUMBER_WORDS[a['pockets']]} {where}pockets")
    if "waistband" in present:
        ph["waistband"] = (f"{_article(a['belt_color'])} {a['belt_color']} belt" if a["belt"]
                           else _choice(rng, ["an elastic waistband", "a waistband"]))
    if "logo" in present:
        ph["logo"] = _choice(rng, [f"a small {a['logo_color']} logo", f"{_article(a['logo_color'])} "
                                   f"{a['logo_color']} logo", f"a {a['logo_color']} emblem"])
    if "hem" in present:
        ph["hem"] = "a ribbed hem"
    if "skirt" in present and a["category"] == "dress":
        ph["skirt"] = f"{_article(a['length'])} {a['length']} {_choice(rng, ['flared', 'A-line'])} skirt"
    return ph


def _noun(a: dict, parts: list[str], rng: np.random.Generator) -> str:
    allowed = [n for n in NOUNS[a["category"]] if parts_named(n) <= set(parts)]
    return _choice(rng, allowed)


def _length_adj(a: dict) -> str:
    return f"{a['length']} " if a["category"] == "skirt" and a["length"] else ""


def make_captions(a: dict, parts: list[str], rng: np.random.Generator) -> list[str]:
    """Four paraphrases: detailed (all parts), short, partial, and reordered detailed."""
    ph = part_phrases(a, parts, rng)
    keys = list(ph)

    adj, after = _color_phrase(a, rng)
    noun = _noun(a, parts, rng)
    head = _np(adj, _length_adj(a) + noun, rng)
    extras = ([after] if after else []) + [ph[k] for k in keys]
    detailed = head + " with " + (_join(extras) if extras else "a plain front")

    adj2, after2 = _color_phrase(a, rng)
    short = _np(adj2, _length_adj(a) + _noun(a, parts, rng), rng) + (f" with {after2}" if after2 else "")

    # A partial description: one to three salient parts in a different syntax.
    sub = [keys[i] for i in sorted(rng.permutation(len(keys))[: int(rng.integers(1, 4))])] if keys else []
    noun3 = _noun(a, parts, rng)
    if sub:
        partial = _choice(rng, [
            f"{noun3} in {a['color']} featuring {_join([ph[k] for k in sub])}",
            f"{a['color']} {noun3}, {_join([ph[k] for k in sub])}",
            (f"these {noun3} are" if noun3 in PLURAL_NOUNS else f"this {noun3} is")
            + f" {a['color']} and {'have' if noun3 in PLURAL_NOUNS else 'has'} {_join([ph[k] for k in sub])}",
        ])
    else:
        partial = f"{a['pattern']} {a['color']} {noun3}"

    order = [keys[i] for i in rng.permutation(len(keys))]
    lead = _choice(rng, ["", "product photo of ", "studio shot of "])
    adj4, after4 = _color_phrase(a, rng)
    body = ", ".join([ph[k] for k in order] + ([after4] if after4 else []))
    if not body:  # nothing to reorder: say it another way than the short caption
        lead = lead or "studio shot of "
    reordered = lead + _np(adj4, _length_adj(a) + _noun(a, parts, rng), rng) + (f": {body}" if body else "")
    caps = [detailed, short, partial, reordered]
    return [c[0].upper() + c[1:] if c[:1].islower() else c for c in caps]
