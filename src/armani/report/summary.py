"""What a trained pipeline can do, in a few lines: per model its headline figures, each with
what it means, the reference it is read against and a flag when it is far from it. The
quickstart's report and every model card show the same block, built from the same figures
(component -> figure -> value, as `armani.json` records them under `measured`).

The references, and when a figure counts as far from one:
- a ceiling (the same figure for the real images' stage-1 reconstructions): far below 80% of
  it, or for a PSNR more than 1 dB under it;
- chance (MaskCLIP's pointing accuracy): far under twice chance;
- a baseline (text alone for a sketch's silhouette, no condition for the caption's NLL): far
  when the gain over it is under the margin named;
- a bar, where nothing better exists (the segmenter's mIoU, a codebook's usage): far under it.

Also here: the training curves (inline SVG from a run's `metrics.jsonl`) and the rounding of
every figure the report shows.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

# Per-stage entries of the quickstart's summary that describe the training run, not the model.
TRAINING_FACTS = ("steps", "planned_steps", "stopped_by", "train_seconds", "last_loss", "mixed_precision")
TRAINED = ("segmenter", "maskclip", "vqgan", "sketch-vq", "transformer")
NAMES = {"segmenter": "segmenter", "maskclip": "MaskCLIP", "vqgan": "stage 1 (VQGAN)",
         "sketch-vq": "sketch tokenizer", "transformer": "stage 2 (Transformer)", "generation": "generation"}


@dataclass(frozen=True)
class Headline:
    model: str
    figure: str
    value: str
    reference: str
    meaning: str
    far: bool


def flat_fidelity(rep: dict) -> dict[str, float]:
    """`fidelity_by_mode`'s report as `mode.figure` (and `mode.figure.ceiling`) -> value."""
    flat = {f"{mode}.{k}": v for mode, r in rep["modes"].items() for k, v in r.items() if isinstance(v, float)}
    flat.update({f"{mode}.{k}.ceiling": v for mode, r in rep["modes"].items()
                 for k, v in r["ceiling"].items() if isinstance(v, float) and mode in ("text", "sketch", "partial")})
    real = (rep.get("category_judge") or {}).get("category_accuracy_real")
    if isinstance(real, float):
        flat["category_judge.real"] = real
    return flat


def measured_of(summary: dict) -> dict[str, dict]:
    """The quickstart summary's figures in the `measured` form of a pipeline folder."""
    out = {k: {f: v for f, v in m.items() if f not in TRAINING_FACTS} for k, m in summary.get("metrics", {}).items()}
    if summary.get("fidelity"):
        out["fidelity"] = flat_fidelity(summary["fidelity"])
    return out


def _num(d: dict, key: str):
    v = d.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def headlines(measured: dict) -> list[Headline]:
    """The headline figures of the components `measured` has figures for (see the module
    docstring for the references and what counts as far)."""
    m = {k: v or {} for k, v in measured.items()}
    seg, mc, vq, sk, tr = (m.get(k, {}) for k in TRAINED)
    gen, fid = m.get("generation", {}), m.get("fidelity", {})
    out = []

    def add(model, figure, value, reference, meaning, far):
        out.append(Headline(NAMES.get(model, model), figure, value, reference, meaning, bool(far)))

    if (v := _num(seg, "miou")) is not None:
        add("segmenter", "part masks, mean IoU (val)", f"{v:.3f}", "bar 0.50",
            "how well predicted part masks cover the true parts; fusion and the semantic losses read them", v < 0.5)
    if (v := _num(mc, "pointing_accuracy")) is not None:
        ch = _num(mc, "pointing_chance")
        add("maskclip", "word-part pointing accuracy", f"{v:.3f}", f"chance {ch:.3f}" if ch is not None else "-",
            "share of part words whose best-matching mask token lies on that part", ch is not None and v < 2 * ch)
    if (v := _num(vq, "psnr")) is not None:
        use = _num(vq, "codebook_usage")
        add("vqgan", "reconstruction PSNR (val)" + (", codebook used" if use is not None else ""),
            f"{v:.1f} dB" + (f", {use:.0%}" if use is not None else ""), "bar 20 dB; 25% of codes",
            "how closely stage 1 redraws a garment from its tokens: the ceiling of every generated image",
            v < 20 or (use is not None and use < 0.25))
    if (use := _num(sk, "codebook_usage")) is not None:
        add("sketch-vq", "codebook used", f"{use:.0%}", "bar 25%",
            "a sketch tokenizer that uses few codes draws one blob for every sketch", use < 0.25)
    if (t := _num(tr, "text")) is not None and (n := _num(tr, "none")) is not None:
        add("transformer", "what the caption tells it (NLL gain)", f"{n - t:.3f} nats/token",
            "no condition; margin 0.02", "image-token NLL on val without a condition minus with the caption",
            n - t < 0.02)
    if (t := _num(tr, "text")) is not None and (s := _num(tr, "text+sketch")) is not None:
        add("transformer", "what a sketch adds (NLL gain)", f"{t - s:.3f} nats/token", "the caption alone; margin 0.02",
            "image-token NLL with the caption minus with caption and sketch", t - s < 0.02)
    if (v := _num(gen, "colour_accuracy")) is not None:
        kept = _num(vq, "colour_kept")
        add("generation", "asked colour (13 colour prompts)", f"{v:.0%}",
            f"stage 1 keeps {kept:.0%}" if kept is not None else "-",
            "text-only samples in the colour the prompt asks, read from the pixels (reference: the share of "
            "val reconstructions that keep their colour)", kept is not None and v < 0.8 * kept)
    if (v := _num(fid, "sketch.silhouette_iou")) is not None:
        base, ceil = _num(fid, "text.silhouette_iou"), _num(fid, "sketch.silhouette_iou.ceiling")
        ref = ", ".join(x for x in (f"text alone {base:.3f}" if base is not None else "",
                                    f"ceiling {ceil:.3f}" if ceil is not None else "") if x)
        add("generation", "sketch only: silhouette IoU", f"{v:.3f}", (ref or "-") + "; margin 0.05",
            "how closely a sample from a sketch alone follows the sketched garment's outline",
            (base is not None and v - base < 0.05) or (ceil is not None and v < 0.8 * ceil))
    if (v := _num(fid, "partial.kept_psnr")) is not None:
        ceil = _num(fid, "partial.kept_psnr.ceiling")
        add("generation", "partial only: kept cells PSNR", f"{v:.1f} dB", f"ceiling {ceil:.1f} dB" if ceil else "-",
            "the sample against the original where the partial image is kept", ceil is not None and v < ceil - 1)
    if (v := _num(fid, "partial.silhouette_iou")) is not None:
        ceil = _num(fid, "partial.silhouette_iou.ceiling")
        add("generation", "partial only: whole-garment silhouette IoU", f"{v:.3f}",
            f"ceiling {ceil:.3f}" if ceil is not None else "-",
            "whether the rest of the sample is the garment the kept part came from",
            ceil is not None and v < 0.8 * ceil)
    if (v := _num(fid, "text.colour_accuracy")) is not None:
        ceil = _num(fid, "text.colour_accuracy.ceiling")
        add("generation", "text: named colour (val captions)", f"{v:.0%}", f"ceiling {ceil:.0%}" if ceil else "-",
            "samples from a val garment's caption in the colour it names", ceil is not None and v < 0.8 * ceil)
    if (v := _num(fid, "text.category_accuracy")) is not None:
        ceil, real = _num(fid, "text.category_accuracy.ceiling"), _num(fid, "category_judge.real")
        ref = ", ".join(x for x in (f"ceiling {ceil:.0%}" if ceil is not None else "",
                                    f"the judge reads {real:.0%} of real images" if real is not None else "") if x)
        add("generation", "text: garment category (val captions)", f"{v:.0%}", ref or "-",
            "samples from a val garment's caption that the attribute judge reads as the garment named",
            ceil is not None and v < 0.8 * ceil)
    return out


def headline_table_html(rows: list[Headline]) -> str:
    esc = html.escape
    body = "".join(f"<tr{' class=far' if h.far else ''}><td>{esc(h.model)}</td><td>{esc(h.figure)}</td>"
                   f"<td><b>{esc(h.value)}</b></td><td>{esc(h.reference)}</td>"
                   f"<td>{'far from it' if h.far else 'ok'}</td><td><small>{esc(h.meaning)}</small></td></tr>"
                   for h in rows)
    return ("<table class=head><tr><th>model</th><th>figure</th><th>value</th><th>reference</th><th></th>"
            f"<th>what it means</th></tr>{body}</table>")


def headline_table_markdown(rows: list[Headline]) -> list[str]:
    lines = ["| model | figure | value | reference | | what it means |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {h.model} | {h.figure} | {h.value} | {h.reference} | {'**far from it**' if h.far else 'ok'} | "
              f"{h.meaning} |" for h in rows]
    return lines


def bookkeeping(m: dict) -> str:
    """One line of a training stage's run facts: steps, how it stopped, time, precision."""
    parts = []
    if "steps" in m:
        parts.append(f"{m['steps']:,} of {m.get('planned_steps', m['steps']):,} planned steps")
    if m.get("stopped_by"):
        parts.append(f"stopped by {m['stopped_by'].replace('_', ' ')}")
    if isinstance(m.get("train_seconds"), (int, float)):
        parts.append(f"{m['train_seconds']:.0f} s")
    if m.get("mixed_precision"):
        parts.append(f"precision {m['mixed_precision']}")
    if isinstance(m.get("last_loss"), (int, float)):
        parts.append(f"last loss {m['last_loss']:.4g}")
    return ", ".join(parts)


def round_figure(key: str, v) -> str:
    """A figure as the report prints it: dB and colour differences to 0.1, shares as percentages
    where the name says so, perplexities whole, everything else to 3 decimals (or 4 significant
    digits when large)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    if not math.isfinite(v):
        return "-"
    k = key.rsplit(".", 1)[-1] if not key.endswith(".ceiling") else key.rsplit(".", 2)[-2]
    if "psnr" in k or "colour_error" in k:
        return f"{v:.1f}"
    if k in ("codebook_usage", "colour_kept", "colour_accuracy", "category_accuracy"):
        return f"{v:.1%}"
    if "perplexity" in k:
        return f"{v:.0f}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.4g}"


def read_curve(log: Path, key: str = "loss") -> tuple[list[float], list[float]]:
    """(steps, values) of `key` in a run's metrics.jsonl; unreadable lines are skipped."""
    steps, vals = [], []
    try:
        text = log.read_text()
    except OSError:
        return steps, vals
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        s, v = rec.get("step"), rec.get(key)
        if isinstance(s, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v):
            steps.append(float(s))
            vals.append(float(v))
    return steps, vals


def trend(vals: list[float]) -> str:
    """Did the curve still fall at the end? The mean of its last quarter against the quarter before."""
    q = len(vals) // 4
    if q < 1:
        return "too few points to tell"
    last, before = sum(vals[-q:]) / q, sum(vals[-2 * q:-q]) / q
    change = (last - before) / abs(before) if before else 0.0
    if change < -0.05:
        return f"still falling ({change:+.0%} over the last quarter of its log)"
    if change > 0.05:
        return f"rising at the end ({change:+.0%} over the last quarter)"
    return f"flat at the end ({change:+.0%} over the last quarter)"


def curve_svg(steps: list[float], vals: list[float], title: str, width: int = 360, height: int = 150) -> str:
    """A line chart of one training curve as inline SVG (no dependency): loss against step,
    the axes labelled with their ranges."""
    esc = html.escape
    left, right, top, bottom = 48, 8, 20, 22
    w, h = width - left - right, height - top - bottom
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    s0, s1 = steps[0], steps[-1]
    ss = s1 - s0 or 1.0
    pts = " ".join(f"{left + (s - s0) / ss * w:.1f},{top + (hi - v) / span * h:.1f}" for s, v in zip(steps, vals))
    return (f'<svg class=curve xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{esc(title)}</title>'
            f'<text x="{left}" y="13" font-size="12">{esc(title)}</text>'
            f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>'
            f'<polyline fill="none" stroke="#1f6fb4" stroke-width="1.5" points="{pts}"/>'
            f'<text x="{left - 4}" y="{top + 9}" font-size="10" text-anchor="end">{hi:.3g}</text>'
            f'<text x="{left - 4}" y="{top + h}" font-size="10" text-anchor="end">{lo:.3g}</text>'
            f'<text x="{left}" y="{height - 6}" font-size="10">step {s0:.0f}</text>'
            f'<text x="{left + w}" y="{height - 6}" font-size="10" text-anchor="end">{s1:.0f}</text></svg>')


def curves_html(runs: Path) -> str:
    """One loss curve per run folder under `runs` with a metrics.jsonl (the training stages in
    pipeline order), with whether it was still falling when it stopped."""
    found = sorted((d.name for d in runs.iterdir() if (d / "metrics.jsonl").is_file()) if runs.is_dir() else [],
                   key=lambda n: (TRAINED.index(n) if n in TRAINED else len(TRAINED), n))
    cells = []
    for stage in found:
        steps, vals = read_curve(runs / stage / "metrics.jsonl")
        if len(vals) < 2:
            cells.append(f"<figure><figcaption>{html.escape(NAMES.get(stage, stage))}: fewer than two logged "
                         "losses, no curve</figcaption></figure>")
            continue
        cells.append(f"<figure>{curve_svg(steps, vals, NAMES.get(stage, stage) + ': training loss')}"
                     f"<figcaption>{html.escape(trend(vals))}</figcaption></figure>")
    return "".join(cells)
