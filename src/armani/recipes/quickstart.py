"""`armani quickstart`: the whole pipeline on the embedded SynthFashion data.

SynthFashion -> segmenter -> MaskCLIP -> stage 1 (cross-modal VQGAN) and the sketch
tokenizer -> tokens -> stage 2 (cross-modal Transformer) -> evaluation -> generation in the
five modes of the paper -> `report.html`, `summary.json` (seconds per stage, metrics) and the
model bundle in `model/` (usable with `armani generate --model DIR/model`).

Each stage leaves its time in `summary.json` when it ends, so a re-run skips finished
stages; an interrupted training stage resumes from its last checkpoint. `--fresh` starts
over. The stage budgets (the `default` profile) are the CPU presets cut short so that the
whole run takes 12 to 15 minutes on a 2-core CPU, most of it spent on stage 1, whose
colours need the steps; every stage is bound by its steps, and its time cap (at least
twice its time here) only guards against a much slower machine: a stage stopped by its cap is
flagged in `summary.json` (`capped`), `report.html` and the last lines printed. Each
stage's overrides of its preset are written to `configs/` (and its resolved config to its
run's `config.json`). The `tiny`
profile is a smoke test of the same code path (seconds).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data.check import check_dataset
from ..data.make_synth import write_synth
from ..errors import UserError
from ..formats.dataset import Index
from ..progress import bar
from ..report.html import quickstart_page
from ..report.preview import contact_sheet
from ..report.summary import TRAINING_FACTS, flat_fidelity
from .profiles import PROFILES, resolve_profile, stage_overrides, write_stage_config
from .stages import StageRunner

# Prompts of the text mode: SynthFashion's vocabulary, one garment category and colour each.
PROMPTS = ("a red T-shirt with a white logo", "a blue dress", "a black jacket with a zipper",
           "a yellow skirt", "green trousers with two pockets", "a white shirt with black buttons")


@dataclass
class QuickstartConfig:
    out: Path = Path("runs/quickstart")
    n: int | None = None      # None: the profile's (4000 unless it says)
    size: int | None = None   # None: the profile's (64 unless it says)
    seed: int = 0
    fresh: bool = False
    quiet: bool = False
    profile: str = "auto"     # "auto": "gpu" when there is a CUDA device, else "default"
    samples: int = 4          # images per prompt in the report


def run_quickstart(cfg: QuickstartConfig, log=print) -> dict:
    profile = resolve_profile(cfg.profile)
    if profile not in PROFILES:
        raise UserError(f"unknown profile {cfg.profile!r}; profiles: auto, {', '.join(PROFILES)}")
    settings = PROFILES[profile].get("settings", {})
    cfg = replace(cfg, profile=profile, n=cfg.n or settings.get("n", 4000), size=cfg.size or settings.get("size", 64))
    runner = StageRunner(cfg.out, {"n": cfg.n, "size": cfg.size, "seed": cfg.seed, "profile": cfg.profile},
                         cfg.fresh, cfg.quiet, log)
    with runner:
        q = _Quickstart(cfg, runner)
        run = q.runner.run
        run("synth", q.synth)
        run("check", q.check)
        run("preview", q.preview)
        for kind in ("segmenter", "maskclip", "vqgan", "sketch-vq"):
            run(kind, lambda k=kind: q.train(k))
        run("tokenize", q.tokenize)
        run("transformer", lambda: q.train("transformer"))
        run("evaluate", q.evaluate)
        run("export", q.export)
        run("generate", q.generate)
        run("colours", q.colours)
        run("fidelity", q.fidelity)
        quickstart_page(q.out, q.summary)
        q.runner.save()
        return q.summary


class _Quickstart:
    """The quickstart's stages, each a method; they share the run folder and summary."""

    def __init__(self, cfg: QuickstartConfig, runner: StageRunner):
        self.cfg, self.runner = cfg, runner
        self.out, self.summary = runner.out, runner.summary
        self.data, self.runs = self.out / "data", self.out / "runs"
        self.metrics = self.summary.setdefault("metrics", {})

    def synth(self) -> None:
        c = self.cfg
        with bar(c.n, "synthfashion", "img", c.quiet) as pb:
            write_synth(self.data, c.n, c.size, c.seed, overwrite=True, progress=pb.update)

    def check(self) -> None:
        with bar(self.cfg.n, "check", "img", self.cfg.quiet) as pb:
            rep = check_dataset(self.data, progress=pb.update)
        if not rep.ok:
            raise RuntimeError("dataset check failed: " + "; ".join(rep.errors[:5]))
        self.summary["dataset"] = {"path": str(self.data), "samples": rep.samples, "splits": dict(rep.splits)}

    def preview(self) -> None:
        contact_sheet(self.data, n=16, split="train", out=self.out / "preview.png")
        if len(Index(self.data, "test_holdout")):
            contact_sheet(self.data, n=8, split="test_holdout", out=self.out / "preview_holdout.png")
        self.summary["preview"] = "preview.png"

    def train(self, kind: str) -> None:
        c, runs = self.cfg, self.runs
        conf = write_stage_config(self.out, kind, kind, stage_overrides(c.profile, kind), c.size)
        source = self.out / "tokens" if kind == "transformer" else self.data
        parents = {"maskclip": runs / "maskclip", "segmenter": runs / "segmenter"} if kind == "vqgan" else {}
        res, tcfg = self.runner.train(kind, source, conf, runs / kind, c.seed, recipe="quickstart", **parents)
        self.metrics.setdefault(kind, {}).update({"steps": res.steps, "planned_steps": tcfg.max_steps,
                                                  "stopped_by": res.stopped_by, "train_seconds": res.seconds,
                                                  "last_loss": res.last_loss,
                                                  "mixed_precision": tcfg.mixed_precision})
        capped = self.summary.setdefault("capped", {})
        capped.pop(kind, None)
        if res.stopped_by != "max_steps":
            capped[kind] = (f"stopped by its {tcfg.max_minutes:g}-minute cap at step {res.steps} of "
                            f"{tcfg.max_steps}: this machine is slower than the budget assumes, and the model is "
                            "less trained than planned")
            self.runner.log(f"[{kind}] warning: {capped[kind]}")

    def tokenize(self) -> None:
        from .tokens import tokenize_dataset
        with bar(self.cfg.n, "tokenize", "img", self.cfg.quiet) as pb:
            tokenize_dataset(self.runs / "vqgan", self.data, self.out / "tokens", self.runs / "sketch-vq",
                             progress=pb.update, device="auto")

    def evaluate(self) -> None:
        from ..eval.alignment import evaluate_alignment
        from ..eval.likelihood import evaluate_nll
        from ..eval.recon import evaluate_recon
        from ..eval.segmentation import evaluate_segmenter
        m, runs, data = self.metrics, self.runs, self.data
        seg = evaluate_segmenter(runs / "segmenter", data, "val")
        m["segmenter"].update(miou=seg["miou"], miou_parts=seg["miou_parts"])
        al = evaluate_alignment(runs / "maskclip", data, "val", max_samples=200)
        m["maskclip"].update(pointing_accuracy=al["pointing_accuracy"], pointing_chance=al["pointing_chance"],
                             recall_at_1=al["recall_at_1"])
        for kind, grid in (("vqgan", "recon.png"), ("sketch-vq", "recon_sketch.png")):
            r = evaluate_recon(runs / kind, data, "val", max_samples=200, grid=self.out / grid, grid_n=8)
            m[kind].update(psnr=r["psnr"], ssim=r["ssim"], codebook_usage=r["codebook_usage"],
                           perplexity=r["perplexity"])
            if r.get("colour_error") is not None:
                m[kind].update(colour_error=r["colour_error"], colour_kept=r["colour_kept"])
                self.summary["recon_colours"] = r["colour_by_name"]
        m["transformer"].update(evaluate_nll(runs / "transformer", self.out / "tokens", "val")["nll_per_token"])

    def export(self) -> None:
        from ..inference.pipeline import export as export_pipeline
        c = self.cfg
        measured = {k: {f: v for f, v in m.items() if f not in TRAINING_FACTS} for k, m in self.metrics.items()
                    if k != "generation"}
        export_pipeline(self.runs / "transformer", self.out / "model", sampling=PROFILES[c.profile].get("sampling"),
                        about={"name": "quickstart",
                               "trained_by": f"armani quickstart (profile {c.profile}, n {c.n}, seed {c.seed})"},
                        measured=measured)

    def generate(self) -> None:
        self.summary["generation"] = generate_report_grids(self.out, self.data, self.cfg.samples, self.cfg.seed,
                                                           self.cfg.quiet)

    def colours(self) -> None:
        from ..eval.colour import NAMES, evaluate_colours
        from ..report.modelcard import record_measured
        with bar(len(NAMES), "colours", "prompt", self.cfg.quiet) as pb:
            rep = evaluate_colours(self.out / "model", self.cfg.samples, self.cfg.seed, progress=pb.update)
        self.summary["colours"] = rep
        self.metrics.setdefault("generation", {})["colour_accuracy"] = rep["accuracy"]
        record_measured(self.out / "model", {"generation": {"colour_accuracy": rep["accuracy"]}})

    def fidelity(self) -> None:
        """Does each generation mode follow its condition (val, 48 garments, 2 samples each)?"""
        from ..eval.generation import fidelity_by_mode
        from ..inference.modes import MODES
        from ..report.modelcard import record_measured
        with bar(len(MODES), "fidelity", "mode", self.cfg.quiet) as pb:
            rep = fidelity_by_mode(self.out / "model", self.data, seed=self.cfg.seed, progress=pb.update)
        self.summary["fidelity"] = rep
        record_measured(self.out / "model", {"fidelity": flat_fidelity(rep)})


def generate_report_grids(out: Path, data: Path, n: int, seed: int, quiet: bool = False) -> dict:
    """Samples for the five generation modes of the paper, one sheet per mode: prompts from PROMPTS (text)
    or the captions of validation images whose sketch or a band across the chest (a quarter of
    the image) is the condition."""
    import numpy as np

    from ..formats.images import read_image
    from ..inference.pipeline import MODES, load
    from ..report.sheet import Row, render, save_png
    g = load(out / "model")
    val = Index(data, "val")
    picks = [val[i] for i in range(min(4, len(val)))]
    sheets = {}
    with bar(len(MODES), "generate", "mode", quiet) as pb:
        for t, mode in enumerate(MODES):
            rows = []
            items = [(p, None) for p in PROMPTS] if mode == "text" else [(None, r) for r in picks]
            for i, (prompt, rec) in enumerate(items):
                photo = read_image(data / rec["image"]) if rec else None
                caption = prompt or rec["captions"][1 if len(rec["captions"]) > 1 else 0]
                cond = g.prepare_mode(mode, caption, photo)
                imgs = np.concatenate([b for b, _ in g.batches(cond, n, seed * 1000 + t * 100 + i)])
                rows.append(Row(rec["id"] if rec else "", cond.text, cond.sketch, cond.partial, imgs))
            name = f"generate_{mode.replace('+', '_')}.png"
            save_png(render(rows), out / name)
            sheets[mode] = name
            pb.update(1)
    return {"sheets": sheets, "samples_per_row": n, "sampling": g.info.get("sampling")}
