"""The project's HTML pages, one template: the quickstart's report, the samples page of
`armani eval generate`, and the side-by-side judging page of `armani eval compare`. Each
page is one file with its images inline (no server, no network)."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from ..formats.fsutil import atomic_write_text

BASE_CSS = ("body{font-family:sans-serif;margin:2em}img{max-width:100%;image-rendering:pixelated;"
            "border:1px solid #ccc}")


def png_data_uri(img: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a data: URI, to inline in a page."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def page(title: str, body: str, css: str = "") -> str:
    """A whole HTML document: the shared style, then `css` (which may override it), then `body`."""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{BASE_CSS}{css}</style></head><body>\n{body}\n</body></html>\n")


def write_page(path: str | Path, title: str, body: str, css: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page(title, body, css))
    return path


def samples_page(path, result: dict, prompts: list, conds, images: np.ndarray, samples: int,
                 metrics: tuple[str, ...], max_rows: int = 48) -> Path:
    """One self-contained page: the metrics, then per prompt its caption, the real photo, the
    conditions and the samples (images inline)."""
    esc = html.escape
    rows = []
    for i, p in enumerate(prompts[:max_rows]):
        cells = [f"<td><img src='{png_data_uri(p.image)}' title='real'></td>"]
        c = conds[i]
        for im in (c.sketch, c.partial):
            if im is not None:
                arr = im if im.ndim == 3 else np.repeat(((im > 0) * 255).astype(np.uint8)[..., None], 3, 2)
                cells.append(f"<td><img src='{png_data_uri(arr)}'></td>")
        cells += [f"<td><img src='{png_data_uri(images[i * samples + k])}'></td>" for k in range(samples)]
        rows.append(f"<tr><td class=c>{esc(p.caption)}</td>{''.join(cells)}</tr>")
    table = "".join(f"<tr><td>{esc(k)}</td><td>{esc(json.dumps(result.get(k)))}</td>"
                      f"<td>{esc(json.dumps(result.get('ci95', {}).get(k)))}</td>"
                      f"<td>{esc(result.get('unavailable', {}).get(k, ''))}</td></tr>" for k in metrics)
    css = "td{padding:2px 6px;vertical-align:middle}td.c{max-width:28em}img{width:96px}"
    body = f"""<h1>armani eval generate: {esc(result['mode'])} on {esc(result['split'])}</h1>
<p>{result['prompts']} prompts x {result['samples_per_prompt']} samples, seed {result['seed']}; model
{esc(str(result.get('model')))}.</p>
<table><tr><th>metric</th><th>value</th><th>95% CI (prompts)</th><th>unavailable because</th></tr>{table}</table>
<h2>Samples</h2><p>caption | real photo | conditions | samples</p><table>{''.join(rows)}</table>"""
    return write_page(path, "armani eval generate", body, css)


def questionnaire_page(names: list[str], items: list[dict], about: dict) -> str:
    esc = html.escape
    blocks = []
    for i, it in enumerate(items):
        opts = "".join(
            f"<label><input type=radio name='q{i}' value='{m}'><img src='{src}'><br>option {chr(65 + k)}</label>"
            for k, (m, src) in enumerate(zip(it["order"], it["images"])))
        blocks.append(f"<div class=q><p><b>{i + 1}.</b> {esc(it['caption'])}</p>{opts}</div>")
    data = json.dumps({"names": names, "ids": [it["id"] for it in items], "about": about})
    css = (".q{border-bottom:1px solid #ddd;padding:8px 0}label{display:inline-block;text-align:center;"
           "margin-right:12px;cursor:pointer}img{width:128px;border-width:2px}input:checked+img{border-color:#d33}"
           "pre{background:#f4f4f4;padding:8px}")
    return page("armani: which garment is best?", f"""<h1>Which garment is best?</h1>
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
</script>""", css)


def _minutes(sec: float) -> str:
    """720.4 -> '720 s (12 min 00 s)'."""
    whole = round(sec)
    return f"{whole} s ({whole // 60} min {whole % 60:02d} s)"


def quickstart_page(out: Path, summary: dict) -> Path:
    """`report.html`: a summary first (what was trained, how long it took, the headline figures
    against their references, `report.summary`), a training curve per stage, the generation
    sheets and the data; every figure, the stage times and the per-mode tables in a collapsed
    block at the end."""
    from .summary import (NAMES, TRAINING_FACTS, bookkeeping, curves_html, headline_table_html, headlines, measured_of,
                          round_figure)
    m = summary.get("metrics", {})
    esc = html.escape
    st = summary.get("stage_seconds", {})
    ds, cfg = summary.get("dataset") or {}, summary.get("settings") or {}
    trained = ", ".join(f"{NAMES[k]} ({m[k]['steps']:,} steps, {st.get(k, 0):.0f} s)" for k in NAMES
                        if k in m and "steps" in m[k])
    heads = headlines(measured_of(summary))
    far = [h for h in heads if h.far]
    verdict = (f"<p class=warn><b>{len(far)} of {len(heads)} headline figures are far from their reference</b>: "
               + "; ".join(esc(f"{h.model}, {h.figure} ({h.value} against {h.reference})") for h in far) + ".</p>"
               if far else f"<p>All {len(heads)} headline figures are near their references.</p>")
    capped = summary.get("capped") or {}
    warn = "".join(f"<p class='warn'>Warning: {esc(k)} {esc(v)}.</p>" for k, v in capped.items())
    imgs = []
    for mode, f in summary.get("generation", {}).get("sheets", {}).items():
        imgs.append(f"<h3>{esc(mode)}</h3><img src='{esc(f)}'>")
    for title, f in [("Training data (SynthFashion)", "preview.png"), ("Stage 1: originals above reconstructions",
                                                                      "recon.png"),
                     ("Sketch tokenizer: originals above reconstructions", "recon_sketch.png")]:
        if (out / f).is_file():
            imgs.append(f"<h3>{esc(title)}</h3><img src='{f}'>")
    groups = []
    for stage, d in m.items():
        facts = bookkeeping(d)
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(round_figure(k, v))}</td></tr>"
                       for k, v in d.items() if k not in TRAINING_FACTS)
        groups.append(f"<h3>{esc(NAMES.get(stage, stage))}</h3>" + (f"<p><small>{esc(facts)}</small></p>" if facts
                                                                    else "") + f"<table>{rows}</table>")
    times = "".join(f"<tr><td>{esc(k)}</td><td>{v:.1f}</td></tr>" for k, v in st.items())
    css = ("body{max-width:1400px}td,th{padding:2px 10px;text-align:left;vertical-align:top}.warn{background:#fff3cd;"
           "border:1px solid #e0b000;padding:6px 10px}tr.far td{background:#fde2e1}figure{display:inline-block;"
           "margin:0 16px 12px 0}figcaption{font-size:12px;color:#444}svg.curve{border:none}"
           "details{margin-top:1.5em}summary{cursor:pointer;font-weight:bold}")
    body = f"""<h1>armani quickstart</h1>
<p>Trained on SynthFashion ({ds.get('samples', cfg.get('n', '?')):,} images at {cfg.get('size', '?')} px, seed
{cfg.get('seed', '?')}, profile <code>{esc(str(cfg.get('profile', '?')))}</code>): {esc(trained)}.
{_minutes(summary.get('total_seconds', 0))} of stages in all. The model is in <code>model/</code>:
<code>armani generate --model {esc(str(out / 'model'))} --text "a blue dress"</code>.</p>
{warn}<h2>Summary</h2>{verdict}{headline_table_html(heads)}
<p><small>References: a ceiling is the same figure for the real images' stage-1 reconstructions (far: under 80% of
it, or 1 dB under for a PSNR); chance is far under twice; a baseline must be beaten by the margin named; a bar is a
plain threshold where nothing better exists.</small></p>
<h2>Training curves</h2>{curves_html(out / 'runs')}
<h2>Generation</h2><p>One sheet per mode: the condition (prompt, sketch, kept cells) and its samples.</p>{''.join(imgs)}
<details><summary>All figures, by stage</summary>
<p>Validation split. Segmenter: mean IoU over labels. MaskCLIP: word-part pointing accuracy (chance given).
Tokenizers: PSNR (dB), SSIM, codebook usage. Stage 2: negative log-likelihood per image token (nats) with no
condition, the caption, caption+sketch and caption+partial image (the partial's kept tokens are in the condition,
so they are easy).</p>{''.join(groups)}
{fidelity_table(summary.get("fidelity"))}
{_colour_table(summary.get("colours"), summary.get("recon_colours"))}
<h3>Time per stage (s)</h3><table>{times}</table>
<p><small>Settings: {esc(json.dumps(cfg))}.</small></p></details>"""
    return write_page(out / "report.html", "armani quickstart", body, css)


_FIDELITY_COLS = (("silhouette_iou", "silhouette IoU", "{:.3f}"), ("kept_psnr", "kept cells PSNR (dB)", "{:.1f}"),
                  ("kept_colour_error", "kept cells CIEDE2000", "{:.1f}"), ("colour_accuracy", "named colour", "{:.0%}"),
                  ("category_accuracy", "garment category", "{:.0%}"))


def _judge_line(rep: dict) -> str:
    j = rep.get("category_judge") or {}
    if j.get("used"):
        return f"it reads the category of {j['category_accuracy_real']:.0%} of {j['samples']} real test images"
    return "not measured: " + (j.get("why") or "no judge")


def fidelity_table(rep: dict | None) -> str:
    """Per generation mode: does it follow its condition, each figure beside its ceiling (the
    real images' stage-1 reconstructions)."""
    if not rep:
        return ""

    def cell(v, c, form) -> str:
        if v is None:
            return "<td>-</td>"
        return f"<td>{form.format(v)}" + (f" <small>(ceiling {form.format(c)})</small>" if c is not None else "") + "</td>"
    rows = "".join(f"<tr><td>{html.escape(mode)}</td>" + "".join(cell(r.get(k), r["ceiling"].get(k), f)
                                                                 for k, _, f in _FIDELITY_COLS) + "</tr>"
                   for mode, r in rep["modes"].items())
    head = "".join(f"<th>{t}</th>" for _, t, _ in _FIDELITY_COLS)
    return (f"<h2>Does each mode follow its condition?</h2><p>{rep['prompts']} {html.escape(rep['split'])} garments, "
            f"{rep['samples_per_prompt']} samples each, partial images kept <i>{html.escape(rep['keep'])}</i>. "
            "Silhouette IoU: the sample's garment pixels against the garment the condition came from (a sketch "
            "should raise it above text alone); kept cells: the sample against the original where the partial "
            "image is kept; named colour: samples in the colour the caption names, read from the pixels; garment category: "
            f"samples the attribute judge reads as the garment named ({html.escape(_judge_line(rep))}). Ceiling: "
            "the same figure for the real image's stage-1 reconstruction.</p>"
            f"<table><tr><th>mode</th>{head}</tr>{rows}</table>")


def _colour_table(gen: dict | None, recon: dict | None) -> str:
    """Per colour name: the share of text-only samples in the asked colour, and how far stage 1's
    reconstructions move that colour (CIEDE2000)."""
    if not gen and not recon:
        return ""
    names = [r["colour"] for r in gen["colours"]] if gen else sorted(recon)
    by = {r["colour"]: r for r in gen["colours"]} if gen else {}
    rows = []
    for n in names:
        g, r = by.get(n), (recon or {}).get(n)
        acc = f"{g['accuracy']:.0%}" if g else ""
        got = ", ".join(g["got"]) if g else ""
        de = f"{r['colour_error']:.1f}" if r else ""
        prompt = g["prompt"] if g else ""
        rows.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in (n, prompt, acc, got, de)) + "</tr>")
    head = (f"<p>Text-only prompts, {gen['samples_per_prompt']} samples each: the asked colour in "
            f"<b>{gen['accuracy']:.0%}</b> of samples (colour read from the pixels: nearest named colour in "
            "CIELAB over the pixels unlike the backdrop).</p>" if gen else "")
    return (f"<h2>Colours</h2>{head}<table><tr><th>colour</th><th>prompt</th><th>asked colour</th>"
            "<th>samples came out</th><th>stage-1 CIEDE2000</th></tr>" + "".join(rows) + "</table>"
            "<p>Stage-1 CIEDE2000: mean colour difference of the garment between validation images and their "
            "reconstructions (about 2 is just noticeable; over 10 is another colour).</p>")
