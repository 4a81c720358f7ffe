"""`armani quickstart`: the whole pipeline on the embedded SynthFashion data.

SynthFashion -> segmenter -> MaskCLIP -> stage 1 (cross-modal VQGAN) and the sketch
tokenizer -> tokens -> stage 2 (cross-modal Transformer) -> evaluation -> generation for the
five tasks of the paper -> `report.html`, `summary.json` (seconds per stage, metrics) and the
model bundle in `model/` (usable with `armani generate --model DIR/model`).

Each stage leaves its time in `summary.json` when it ends, so a re-run skips finished
stages; an interrupted training stage resumes from its last checkpoint. `--fresh` starts
over. The stage budgets (the `default` profile) are the CPU presets cut short so that the
whole run fits in about 12 minutes on a 2-core CPU, most of it spent on stage 1, whose
colours need the steps; every stage is bound by its steps, and its time cap (at least
twice its time here) only guards against a much slower machine: a stage stopped by its cap is
flagged in `summary.json` (`capped`), `report.html` and the last lines printed. Each
stage's overrides of its preset are written to `configs/` (and its resolved config to its
run's `config.json`). The `tiny`
profile is a smoke test of the same code path (seconds).
"""
from __future__ import annotations

import html
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.check import check_dataset
from ..data.make_synth import write_synth
from ..errors import UserError
from ..formats.dataset import Index
from ..progress import bar
from ..report.preview import contact_sheet

# Overrides of the CPU presets per stage: {"model": ..., "loss": ..., "train": ...}.
PROFILES: dict[str, dict[str, dict]] = {
    "default": {  # steps-bound: the caps are safety nets, 2.5-7x each stage's time on 2 cores
        "segmenter": {"train": {"max_steps": 100, "max_minutes": 3, "checkpoint_every": 50}},
        "maskclip": {"train": {"max_steps": 150, "batch_size": 32, "max_minutes": 3, "checkpoint_every": 50}},
        "vqgan": {"loss": {"disc_weight": 0.0, "semantic_every": 8},
                  "train": {"max_steps": 1000, "max_minutes": 15, "checkpoint_every": 100}},
        "sketch-vq": {"train": {"max_steps": 100, "max_minutes": 2, "checkpoint_every": 50}},
        "transformer": {"model": {"width": 128, "layers": 4, "heads": 4},
                        "train": {"max_steps": 400, "lr": 0.002, "warmup_steps": 30, "max_minutes": 10,
                                  "checkpoint_every": 100}},
        # Written into the exported model's armani.json. At 400 steps the Transformer's
        # distribution is broad; temperature 0.7 took the asked colour from 78.5% to 83.0% and
        # the judge's attribute accuracy from 58.1% to 62.3%, for 11% less pixel variety
        # between samples (docs/results.md, "Sampling temperature").
        "sampling": {"temperature": 0.7},
    },
    "tiny": {
        "segmenter": {"model": {"channels": [4, 8]}, "train": {"max_steps": 2, "batch_size": 8}},
        "maskclip": {"model": {"mask_width": 16, "mask_layers": 1, "mask_heads": 2, "text_width": 16,
                               "text_heads": 2, "embed_dim": 8}, "train": {"max_steps": 2, "batch_size": 8}},
        "vqgan": {"model": {"channels": [8, 8, 16, 16], "z_channels": 16, "num_codes": 32, "code_dim": 4},
                  "loss": {"disc_weight": 0.0}, "train": {"max_steps": 2, "batch_size": 8}},
        "sketch-vq": {"model": {"channels": [4, 8, 8, 8], "z_channels": 8, "num_codes": 16, "code_dim": 4},
                      "train": {"max_steps": 2, "batch_size": 8}},
        "transformer": {"model": {"width": 32, "layers": 1, "heads": 2}, "loss": {"semantic_batch": 2},
                        "train": {"max_steps": 2, "batch_size": 8}},
    },
}
# Prompts of the text task: SynthFashion's vocabulary, one garment category and colour each.
PROMPTS = ("a red T-shirt with a white logo", "a blue dress", "a black jacket with a zipper",
           "a yellow skirt", "green trousers with two pockets", "a white shirt with black buttons")
TASKS = ("text", "text+sketch", "text+partial", "sketch", "partial")
# Per-stage entries of summary.json that describe the training run, not the model.
_TRAINING_FACTS = ("steps", "planned_steps", "stopped_by", "train_seconds", "last_loss")


@dataclass
class QuickstartConfig:
    out: Path = Path("runs/quickstart")
    n: int = 4000
    size: int = 64
    seed: int = 0
    fresh: bool = False
    quiet: bool = False
    profile: str = "default"
    samples: int = 4          # images per prompt in the report


def write_stage_config(out: Path, name: str, kind: str, over: dict, size: int) -> str:
    """`out/configs/<name>.json`: the CPU preset of `kind` with the overrides `over` (a dict of
    sections, not modified) and the image size; returns its path."""
    over = json.loads(json.dumps(over))
    if kind != "transformer":  # stage 2's sizes follow the token folder
        over.setdefault("model", {})["image_size"] = size
    over.setdefault("train", {}).setdefault("log_every", 10)
    path = out / "configs" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"preset": "cpu", **over}, indent=2) + "\n")
    return str(path)


def _stage_config(out: Path, kind: str, profile: str, size: int) -> str:
    return write_stage_config(out, kind, kind, PROFILES[profile][kind], size)


def run_quickstart(cfg: QuickstartConfig, log=print) -> dict:
    if cfg.profile not in PROFILES:
        raise UserError(f"unknown profile {cfg.profile!r}; profiles: {', '.join(PROFILES)}")
    out = Path(cfg.out)
    if cfg.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    stages = summary.setdefault("stage_seconds", {})
    metrics = summary.setdefault("metrics", {})
    data, runs = out / "data", out / "runs"
    settings = {"n": cfg.n, "size": cfg.size, "seed": cfg.seed, "profile": cfg.profile}
    if summary.get("settings") not in (None, settings):
        raise UserError(f"{out} was made with {summary['settings']}; pass --fresh to start over "
                         "with new settings, or choose another --out")
    summary["settings"] = settings

    def save() -> None:
        summary["total_seconds"] = round(sum(stages.values()), 2)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")

    def stage(name: str, fn) -> None:
        if name in stages:
            log(f"[{name}] done already ({stages[name]:.1f} s), skipped")
            return
        log(f"[{name}] ...")
        t0 = time.perf_counter()
        fn()
        stages[name] = round(time.perf_counter() - t0, 2)
        save()
        log(f"[{name}] {stages[name]:.1f} s")

    def synth() -> None:
        with bar(cfg.n, "synthfashion", "img", cfg.quiet) as pb:
            write_synth(data, cfg.n, cfg.size, cfg.seed, overwrite=True, progress=pb.update)

    def check() -> None:
        with bar(cfg.n, "check", "img", cfg.quiet) as pb:
            rep = check_dataset(data, progress=pb.update)
        if not rep.ok:
            raise RuntimeError("dataset check failed: " + "; ".join(rep.errors[:5]))
        summary["dataset"] = {"path": str(data), "samples": rep.samples, "splits": dict(rep.splits)}

    def preview() -> None:
        contact_sheet(data, n=16, split="train", out=out / "preview.png")
        if len(Index(data, "test_holdout")):
            contact_sheet(data, n=8, split="test_holdout", out=out / "preview_holdout.png")
        summary["preview"] = "preview.png"

    def train(kind: str, **kw) -> None:
        from ..train.loop import Trainer
        from ..train.stage1 import sketch_task, vqgan_task
        from ..train.stage2 import transformer_task
        from ..train.tasks import maskclip_task, segmenter_task
        conf = _stage_config(out, kind, cfg.profile, cfg.size)
        make = {"segmenter": segmenter_task, "maskclip": maskclip_task, "vqgan": vqgan_task,
                "sketch-vq": sketch_task, "transformer": transformer_task}[kind]
        if kind == "transformer":
            task, tcfg = make(out / "tokens", conf, seed=cfg.seed)
        elif kind == "vqgan":
            task, tcfg = make(data, runs / "maskclip", runs / "segmenter", conf, seed=cfg.seed)
        else:
            task, tcfg = make(data, conf, seed=cfg.seed)
        res = Trainer(task, tcfg, runs / kind, resume=True, quiet=cfg.quiet,
                      extra_config={"quickstart": str(out)}).fit()
        metrics.setdefault(kind, {}).update({"steps": res.steps, "planned_steps": tcfg.max_steps,
                                             "stopped_by": res.stopped_by, "train_seconds": res.seconds,
                                             "last_loss": res.last_loss})
        capped = summary.setdefault("capped", {})
        capped.pop(kind, None)
        if res.stopped_by != "max_steps":
            capped[kind] = (f"stopped by its {tcfg.max_minutes:g}-minute cap at step {res.steps} of "
                            f"{tcfg.max_steps}: this machine is slower than the budget assumes, and the model is "
                            "less trained than planned")
            log(f"[{kind}] warning: {capped[kind]}")

    def evaluate() -> None:
        from ..eval.alignment import evaluate_alignment
        from ..eval.likelihood import evaluate_nll
        from ..eval.recon import evaluate_recon
        from ..eval.segmentation import evaluate_segmenter
        seg = evaluate_segmenter(runs / "segmenter", data, "val")
        metrics["segmenter"].update(miou=seg["miou"], miou_parts=seg["miou_parts"])
        al = evaluate_alignment(runs / "maskclip", data, "val", max_samples=200)
        metrics["maskclip"].update(pointing_accuracy=al["pointing_accuracy"], pointing_chance=al["pointing_chance"],
                                   recall_at_1=al["recall_at_1"])
        for kind, grid in (("vqgan", "recon.png"), ("sketch-vq", "recon_sketch.png")):
            r = evaluate_recon(runs / kind, data, "val", max_samples=200, grid=out / grid, grid_n=8)
            metrics[kind].update(psnr=r["psnr"], ssim=r["ssim"], codebook_usage=r["codebook_usage"],
                                 perplexity=r["perplexity"])
            if r.get("colour_error") is not None:
                metrics[kind].update(colour_error=r["colour_error"], colour_kept=r["colour_kept"])
                summary["recon_colours"] = r["colour_by_name"]
        metrics["transformer"].update(evaluate_nll(runs / "transformer", out / "tokens", "val")["nll_per_token"])

    def tokenize() -> None:
        from .tokens import tokenize_dataset
        with bar(cfg.n, "tokenize", "img", cfg.quiet) as pb:
            tokenize_dataset(runs / "vqgan", data, out / "tokens", runs / "sketch-vq", progress=pb.update)

    def export() -> None:
        from ..inference.pipeline import export as export_pipeline
        measured = {k: {f: v for f, v in m.items() if f not in _TRAINING_FACTS} for k, m in metrics.items()
                    if k != "generation"}
        export_pipeline(runs / "transformer", out / "model", sampling=PROFILES[cfg.profile].get("sampling"),
                        about={"name": "quickstart",
                               "trained_by": f"armani quickstart (profile {cfg.profile}, n {cfg.n}, seed {cfg.seed})"},
                        measured=measured)

    def generate() -> None:
        summary["generation"] = generate_report_grids(out, data, cfg.samples, cfg.seed, cfg.quiet)

    def colours() -> None:
        from ..eval.colour import NAMES, evaluate_colours
        from ..report.modelcard import record_measured
        with bar(len(NAMES), "colours", "prompt", cfg.quiet) as pb:
            rep = evaluate_colours(out / "model", cfg.samples, cfg.seed, progress=pb.update)
        summary["colours"] = rep
        metrics.setdefault("generation", {})["colour_accuracy"] = rep["accuracy"]
        record_measured(out / "model", {"generation": {"colour_accuracy": rep["accuracy"]}})

    stage("synth", synth)
    stage("check", check)
    stage("preview", preview)
    for kind in ("segmenter", "maskclip", "vqgan", "sketch-vq"):
        stage(kind, lambda k=kind: train(k))
    stage("tokenize", tokenize)
    stage("transformer", lambda: train("transformer"))
    stage("evaluate", evaluate)
    stage("export", export)
    stage("generate", generate)
    stage("colours", colours)
    write_report(out, summary)
    save()
    return summary


def generate_report_grids(out: Path, data: Path, n: int, seed: int, quiet: bool = False) -> dict:
    """Samples for the five tasks of the paper, one sheet per task: prompts from PROMPTS (text)
    or the captions of validation images whose sketch or a band across the chest (a quarter of
    the image) is the condition."""
    from ..formats.images import read_image
    from ..inference.pipeline import generate_from, load, prepare
    from ..report.sheet import Row, render, save_png
    g = load(out / "model")
    val = Index(data, "val")
    picks = [val[i] for i in range(min(4, len(val)))]
    s = g.image_size
    box = (0, s // 4, s, s // 2)  # a band across the chest: a quarter of the image, as in training
    sheets = {}
    with bar(len(TASKS), "generate", "task", quiet) as pb:
        for t, task in enumerate(TASKS):
            rows = []
            items = [(p, None) for p in PROMPTS] if task == "text" else [(None, r) for r in picks]
            for i, (prompt, rec) in enumerate(items):
                photo = read_image(data / rec["image"]) if rec else None
                caption = prompt or (rec["captions"][1 if len(rec["captions"]) > 1 else 0] if "text" in task else None)
                cond = prepare(g, caption, sketch_from=photo if "sketch" in task else None,
                               partial=photo if "partial" in task else None,
                               keep_box=box if "partial" in task else None)
                imgs = generate_from(g, cond, n, seed * 1000 + t * 100 + i)
                rows.append(Row(rec["id"] if rec else "", cond.text, cond.sketch, cond.partial, imgs))
            name = f"generate_{task.replace('+', '_')}.png"
            save_png(render(rows), out / name)
            sheets[task] = name
            pb.update(1)
    return {"sheets": sheets, "samples_per_row": n, "sampling": g.info.get("sampling")}


def write_report(out: Path, summary: dict) -> Path:
    """`report.html`: the stages' times and metrics, and the image grids, side by side."""
    m = summary.get("metrics", {})
    esc = html.escape

    def fmt(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else esc(str(v))

    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.1f}</td></tr>" for k, v in summary.get("stage_seconds", {}).items())
    mrows = "".join(f"<tr><td>{esc(stage)}</td><td>{esc(k)}</td><td>{fmt(v)}</td></tr>"
                    for stage, d in m.items() for k, v in d.items())
    imgs = []
    for title, f in [("Training data (SynthFashion)", "preview.png"), ("Stage 1: originals above reconstructions",
                                                                      "recon.png"),
                     ("Sketch tokenizer: originals above reconstructions", "recon_sketch.png")]:
        if (out / f).is_file():
            imgs.append(f"<h3>{esc(title)}</h3><img src='{f}'>")
    for task, f in summary.get("generation", {}).get("sheets", {}).items():
        imgs.append(f"<h3>Generation: {esc(task)}</h3><img src='{esc(f)}'>")
    capped = summary.get("capped") or {}
    warn = "".join(f"<p class='warn'>Warning: {esc(k)} {esc(v)}.</p>" for k, v in capped.items())
    colours = _colour_table(summary.get("colours"), summary.get("recon_colours"))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>armani quickstart</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:2em}}td,th{{padding:2px 10px;text-align:left}}
img{{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}}
.warn{{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px}}</style></head><body>
<h1>armani quickstart</h1>
<p>Settings: {esc(json.dumps(summary.get('settings')))}. Total {summary.get('total_seconds', 0):.0f} s.
Model: <code>model/</code> (<code>armani generate --model {esc(str(out / 'model'))} --text "..."</code>).</p>
{warn}<h2>Time per stage (s)</h2><table>{rows}</table>
<h2>Metrics</h2><p>Validation split. Segmenter: mean IoU over labels. MaskCLIP: word-part pointing accuracy
(chance given). Tokenizers: PSNR (dB), SSIM, codebook usage. Stage 2: negative log-likelihood per image token
(nats) with no condition, the caption, caption+sketch and caption+partial image (the partial's kept tokens are
in the condition, so they are easy).</p>
<table><tr><th>stage</th><th>metric</th><th>value</th></tr>{mrows}</table>
{colours}
<h2>Images</h2>{''.join(imgs)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(doc)
    return path


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
