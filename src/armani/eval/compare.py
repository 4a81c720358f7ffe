"""`armani eval compare`: a side-by-side judging page, as in the paper's human evaluation
(Fig. 8, appendix C). For each prompt the models' samples are shown in a random order
(seeded, recorded in the page); a person picks the most realistic and relevant one; the page
tallies the picks per model and exports them as JSON. One static HTML file, images inline,
no server and no network."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .generation import _png_uri, generate_for, load_prompts


def write_questionnaire(models: list, data: str | os.PathLike, out: str | os.PathLike, names: list[str] | None = None,
                        task: str = "text", split: str = "val", n: int = 20, seed: int = 0) -> Path:
    from ..inference.pipeline import load
    names = names or [Path(m).name for m in models]
    if len(set(names)) != len(names):
        raise UserError(f"model names must differ: {names} (pass --names)")
    gens = [load(m) for m in models]
    size = gens[0].image_size
    if any(g.image_size != size for g in gens):
        raise UserError("the models make images of different sizes")
    prompts = load_prompts(data, split, n, size)
    images = [generate_for(g, prompts, task, 1, seed)[0] for g in gens]
    rng = np.random.default_rng(seed)
    items = []
    for i, p in enumerate(prompts):
        order = rng.permutation(len(gens)).tolist()
        items.append({"id": p.id, "caption": p.caption if "text" in task else f"(from {p.id})", "order": order,
                      "images": [_png_uri(images[m][i]) for m in order]})
    doc = _page(names, items, {"task": task, "split": split, "seed": seed, "models": [str(m) for m in models]})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    return out


def _page(names: list[str], items: list[dict], about: dict) -> str:
    esc = html.escape
    blocks = []
    for i, it in enumerate(items):
        opts = "".join(
            f"<label><input type=radio name='q{i}' value='{m}'><img src='{src}'><br>option {chr(65 + k)}</label>"
            for k, (m, src) in enumerate(zip(it["order"], it["images"])))
        blocks.append(f"<div class=q><p><b>{i + 1}.</b> {esc(it['caption'])}</p>{opts}</div>")
    data = json.dumps({"names": names, "ids": [it["id"] for it in items], "about": about})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>armani: which garment is best?</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}.q{{border-bottom:1px solid #ddd;padding:8px 0}}
label{{display:inline-block;text-align:center;margin-right:12px;cursor:pointer}}
img{{width:128px;image-rendering:pixelated;border:2px solid #ccc}}input:checked+img{{border-color:#d33}}
pre{{background:#f4f4f4;padding:8px}}</style></head><body>
<h1>Which garment is best?</h1>
<p>For each description, pick the image that is the most realistic <i>and</i> matches the description best.
The order of the options is random for each question. When done, press <b>Tally</b> and save the JSON.</p>
{''.join(blocks)}
<p><button onclick="tally()">Tally</button> <button onclick="save()">Save JSON</button></p>
<pre id=out></pre>
<script>
const META = {data};
function result() {{
  const counts = Object.fromEntries(META.names.map(n => [n, 0]));
  const picks = {{}};
  META.ids.forEach((id, i) => {{
    const c = document.querySelector(`input[name=q${{i}}]:checked`);
    if (c) {{ const n = META.names[+c.value]; counts[n] += 1; picks[id] = n; }}
  }});
  return {{counts, answered: Object.keys(picks).length, questions: META.ids.length, picks, about: META.about}};
}}
function tally() {{ document.getElementById('out').textContent = JSON.stringify(result(), null, 2); }}
function save() {{
  const blob = new Blob([JSON.stringify(result(), null, 2)], {{type: 'application/json'}});
  const a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = 'tallies.json'; a.click();
}}
</script></body></html>
"""
