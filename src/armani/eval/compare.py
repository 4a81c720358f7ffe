"""`armani eval compare`: a side-by-side judging page, as in the paper's human evaluation
(Fig. 8, appendix C). For each prompt the models' samples are shown in a random order
(seeded, recorded in the page); a person picks the most realistic and relevant one; the page
tallies the picks per model and exports them as JSON. One static HTML file, images inline,
no server and no network."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..report.html import png_data_uri, questionnaire_page
from .generation import generate_for, load_prompts


def write_questionnaire(models: list, data: str | os.PathLike, out: str | os.PathLike, names: list[str] | None = None,
                        mode: str = "text", split: str = "val", n: int = 20, seed: int = 0) -> Path:
    from ..inference.pipeline import load
    names = names or [Path(m).name for m in models]
    if len(set(names)) != len(names):
        raise UserError(f"model names must differ: {names} (pass --names)")
    gens = [load(m) for m in models]
    size = gens[0].image_size
    if any(g.image_size != size for g in gens):
        raise UserError("the models make images of different sizes")
    prompts = load_prompts(data, split, n, size)
    images = [generate_for(g, prompts, mode, 1, seed)[0] for g in gens]
    rng = np.random.default_rng(seed)
    items = []
    for i, p in enumerate(prompts):
        order = rng.permutation(len(gens)).tolist()
        items.append({"id": p.id, "caption": p.caption if "text" in mode else f"(from {p.id})", "order": order,
                      "images": [png_data_uri(images[m][i]) for m in order]})
    doc = questionnaire_page(names, items, {"mode": mode, "split": split, "seed": seed, "models": [str(m) for m in models]})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    return out
