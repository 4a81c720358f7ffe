"""`armani experiment paper`: the paper's Tables 1 and 2 on SynthFashion.

One dataset, one segmenter, one MaskCLIP, one sketch tokenizer and one attribute judge are
shared; the variants differ only where the paper's ablations do:

| row | stage-1 codebook | stage-1 semantic loss | stage-2 semantic loss | stage-2 text tokens |
| --- | --- | --- | --- | --- |
| ARMANI | MaskCLIP fusion | on | on | the preset's (learned embeddings) |
| DALL-E-style baseline | plain VQGAN | off | off | learned embeddings |
| w/o MaskCLIP fusion | plain | on | on | the preset's |
| w/o stage-1 semantic loss | fusion | off | on | the preset's |
| w/o stage-2 semantic loss | fusion (ARMANI's stage 1) | on | off | the preset's |
| w/ MaskCLIP's text encoder | fusion (ARMANI's stage 1) | on | on | the frozen MaskCLIP text encoder |

Beside the table, `summary.json` holds the probes that say whether each mechanism acts:
per stage-1 model (`probes.stage1`) PSNR, `text_code_change` (codes that change when the
caption is swapped), the reconstructions' MaskCLIP score and the stage-1 semantic loss's
gradient share; per Transformer
(`probes.stage2`) the semantic loss's gradient share and the validation NLL per image token
with and without the caption.

Each variant is scored by `eval.generation` with the same prompts, seeds, judge and scoring
networks for the text, text+sketch and text+partial modes on `val`, and for the text mode on
the compositional hold-out (`test_holdout`): there the held-out part's accuracy. Results go to
`results.json` and `table.md`. Stages are recorded in `summary.json` as they finish, so a
re-run resumes; `--fresh` starts over. A re-run with other evaluation settings (`--prompts`,
`--inception`, `--clip`) keeps the trained models and evaluates again.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..eval.foreign import CLIP_ENV, INCEPTION_ENV
from ..progress import bar
from .profiles import PROFILES, merge, write_stage_config
from .stages import StageRunner

STAGE1 = {  # name -> (fusion, stage-1 semantic loss on?)
    "fusion": ("maskclip", True),
    "plain": ("none", False),
    "plain-sem": ("none", True),
    "fusion-nosem": ("maskclip", False),
}
# variant -> (row name, stage-1 model it uses, its Transformer's stage-2 semantic loss on?,
#             its text tokens: None for the preset's, or a `text_encoder` value)
VARIANTS = {
    "armani": ("ARMANI", "fusion", True, None),
    "dalle": ("DALL-E-style baseline (plain VQGAN, no semantic losses, learned text embeddings)", "plain", False,
              "learned"),
    "no_fusion": ("w/o MaskCLIP fusion", "plain-sem", True, None),
    "no_sem1": ("w/o stage-1 semantic loss", "fusion-nosem", True, None),
    "no_sem2": ("w/o stage-2 semantic loss", "fusion", False, None),
    "maskclip_text": ("w/ MaskCLIP's text encoder (frozen, the paper's choice; per-word in the CPU preset)",
                      "fusion", True, "maskclip"),
}
EVAL_MODES = ("text", "text+sketch", "text+partial")

PRESETS: dict[str, dict] = {
    # The quickstart's budgets with 500-step Transformers. The time caps are far above what the
    # stages need, so that every variant trains its planned steps.
    "cpu": {"n": 4000, "judge_n": 8000, "size": 64, "profile": "default", "prompts": 100, "samples": 1,
            "overrides": {"transformer": {"train": {"max_steps": 500, "max_minutes": 14}},
                          "judge": {"train": {"max_steps": 2000, "max_minutes": 7}}}},
    # For a lent GPU: more data, the full CPU presets, more prompts.
    "gpu": {"n": 10000, "judge_n": 20000, "size": 64, "profile": None, "prompts": 500, "samples": 2, "overrides": {}},
    # Seconds: the code path only (tests).
    "micro": {"n": 96, "judge_n": 48, "size": 32, "profile": "tiny", "prompts": 4, "samples": 1,
              "overrides": {"judge": {"model": {"channels": [4, 8]}, "train": {"max_steps": 2, "batch_size": 8}},
                            "vqgan": {"loss": {"semantic_every": 1}},
                            "transformer": {"loss": {"semantic_every": 1}}}},
}


@dataclass
class ExperimentConfig:
    out: Path = Path("runs/experiment")
    preset: str = "cpu"
    seed: int = 0
    fresh: bool = False
    quiet: bool = False
    inception: str | None = None
    clip: str | None = None
    prompts: int | None = None  # overrides the preset's


def stage_config(out: Path, name: str, kind: str, preset: dict, extra: dict | None = None) -> str:
    """`out/configs/<name>.json`: the preset's profile for `kind`, its overrides, then `extra`."""
    base = PROFILES[preset["profile"]].get(kind, {}) if preset["profile"] else {}
    return write_stage_config(out, name, kind, merge(base, preset["overrides"].get(kind, {}), extra), preset["size"])


def run_experiment(cfg: ExperimentConfig, log=print) -> dict:
    if cfg.preset not in PRESETS:
        raise UserError(f"unknown preset {cfg.preset!r}; presets: {', '.join(PRESETS)}")
    x = _Experiment(cfg, StageRunner(cfg.out, {"preset": cfg.preset, "seed": cfg.seed}, cfg.fresh, cfg.quiet, log))
    run = x.runner.run
    run("synth", x.synth)
    for kind in ("segmenter", "maskclip", "sketch-vq"):
        run(kind, lambda k=kind: x.train_shared(k))
    run("judge", x.train_judge)
    for name in STAGE1:
        run(f"stage1-{name}", lambda s=name: x.train_stage1(s))
    for v in VARIANTS:
        run(f"stage2-{v}", lambda s=v: x.train_stage2(s))
    for v in VARIANTS:
        run(f"eval-{v}", lambda s=v: x.evaluate(s))
    summary, results = x.summary, x.results
    summary["judge"] = next(iter(next(iter(results.values())).values())).get("judge") if results else None
    x.runner.save()
    (x.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (x.out / "table.md").write_text(table(summary, x.n_prompts, x.preset["samples"]))
    return summary


class _Experiment:
    """The experiment's stages, each a method; they share the run folder and summary."""

    def __init__(self, cfg: ExperimentConfig, runner: StageRunner):
        self.cfg, self.runner, self.preset = cfg, runner, PRESETS[cfg.preset]
        self.out, self.summary = runner.out, runner.summary
        self.data, self.runs = self.out / "data", self.out / "runs"
        self.results = self.summary.setdefault("results", {})
        self.probes = self.summary.setdefault("probes", {"stage1": {}, "stage2": {}})
        self.n_prompts = cfg.prompts or self.preset["prompts"]
        self.scorers: dict = {}
        # Other evaluation settings (more prompts, an Inception or CLIP file) re-run only the evaluation.
        evaluation = {"prompts": self.n_prompts, "inception": cfg.inception or os.environ.get(INCEPTION_ENV),
                      "clip": cfg.clip or os.environ.get(CLIP_ENV)}
        if self.summary.get("evaluation") not in (None, evaluation):
            for k in [k for k in runner.stages if k.startswith("eval-")]:
                del runner.stages[k]
            self.results.clear()
        self.summary["evaluation"] = evaluation

    def synth(self) -> None:
        from ..data.check import check_dataset
        from ..data.make_synth import write_synth
        n = self.preset["n"]
        with bar(n, "synthfashion", "img", self.cfg.quiet) as pb:
            write_synth(self.data, n, self.preset["size"], self.cfg.seed, overwrite=True, progress=pb.update)
        rep = check_dataset(self.data)
        if not rep.ok:
            raise RuntimeError("dataset check failed: " + "; ".join(rep.errors[:5]))

    def _fit(self, kind: str, source, conf: str, run: str, **parents) -> None:
        self.runner.train(kind, source, conf, self.runs / run, self.cfg.seed, recipe="experiment", **parents)

    def train_shared(self, kind: str) -> None:
        self._fit(kind, self.data, stage_config(self.out, kind, kind, self.preset), kind)

    def train_judge(self) -> None:
        # The judge learns from its own render (another seed, no hold-out, so it has seen every
        # part on every garment) and is tested on the experiment's real test images.
        from ..data.make_synth import write_synth
        n = self.preset["judge_n"]
        with bar(n, "synthfashion (judge)", "img", self.cfg.quiet) as pb:
            write_synth(self.out / "judge-data", n, self.preset["size"], self.cfg.seed + 1, holdout=(),
                        overwrite=True, tokenizer_vocab=None, progress=pb.update)
        self._fit("judge", self.out / "judge-data", stage_config(self.out, "judge", "judge", self.preset), "judge")

    def train_stage1(self, name: str) -> None:
        from ..eval.recon import evaluate_recon
        from .tokens import tokenize_dataset
        fusion, sem = STAGE1[name]
        extra = {"model": {"fusion": fusion}, "loss": {} if sem else {"lambda2": 0.0}}
        conf = stage_config(self.out, f"vqgan-{name}", "vqgan", self.preset, extra)
        mc = self.runs / "maskclip" if (fusion == "maskclip" or sem) else None
        run = self.runs / f"vqgan-{name}"
        self._fit("vqgan", self.data, conf, run.name, maskclip=mc, segmenter=self.runs / "segmenter")
        with bar(self.preset["n"], f"tokenize {name}", "img", self.cfg.quiet) as pb:
            tokenize_dataset(run, self.data, self.out / "tokens" / name, self.runs / "sketch-vq", progress=pb.update)
        r = evaluate_recon(run, self.data, "val", max_samples=200)
        self.probes["stage1"][name] = {k: r[k] for k in ("psnr", "codebook_usage", "text_code_change",
                                                         "text_code_change_removed", "maskclip_score")}
        self.probes["stage1"][name].update(logged_means(run, ("semantic_grad_share", "semantic_grad_cos")))

    def train_stage2(self, variant: str) -> None:
        from ..eval.likelihood import evaluate_nll
        _, s1, sem2, text_encoder = VARIANTS[variant]
        extra = {} if sem2 else {"loss": {"semantic_every": 0}}
        if text_encoder:
            extra["model"] = {"text_encoder": text_encoder}
        conf = stage_config(self.out, f"transformer-{variant}", "transformer", self.preset, extra)
        run = self.runs / f"transformer-{variant}"
        self._fit("transformer", self.out / "tokens" / s1, conf, run.name)
        nll = evaluate_nll(run, self.out / "tokens" / s1, "val")["nll_per_token"]
        self.probes["stage2"][variant] = {"nll_none": nll["none"], "nll_caption": nll["text"],
                                          **logged_means(run, ("semantic_grad_share", "semantic_grad_cos"))}

    def evaluate(self, variant: str) -> None:
        from ..eval.generation import evaluate_generation, load_scorers
        from ..inference.pipeline import load
        if not self.scorers:
            self.scorers["s"] = load_scorers(self.runs / "judge", self.runs / "maskclip", self.runs / "segmenter",
                                             self.cfg.inception, self.cfg.clip, self.data)
        g = load(self.runs / f"transformer-{variant}")  # on the GPU when there is one
        res = {}
        for mode, split in [(m, "val") for m in EVAL_MODES] + [("text", "test_holdout")]:
            key = mode if split == "val" else "holdout"
            res[key] = evaluate_generation(g, self.data, mode, split, self.n_prompts, self.preset["samples"],
                                           self.cfg.seed, scorers=self.scorers["s"],
                                           html_path=self.out / "samples" / f"{variant}_{key.replace('+', '_')}.html")
        self.results[variant] = res


def logged_means(run: Path, keys: tuple[str, ...]) -> dict[str, float]:
    """The mean over a run's `metrics.jsonl` rows of each key that was logged (probes)."""
    rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


def _fmt(v, ci=None, pct=False) -> str:
    if v is None:
        return "n/a"
    if pct:
        s = f"{100 * v:.1f}"
        return s + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
    s = f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
    return s + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def table(summary: dict, prompts: int, samples: int) -> str:
    """Markdown: one row per variant; per generation mode attribute accuracy (%), MaskCLIP score, FID,
    KID (x1000), IS, CLIPScore; the hold-out part's accuracy. 95% bootstrap intervals over prompts."""
    res = summary["results"]
    lines = [f"Prompts: {prompts} per mode (`val`; hold-out: `test_holdout`), {samples} sample(s) each, seed "
             f"{summary['settings']['seed']}. Brackets: 95% bootstrap intervals over prompts (1,000 resamples). "
             "attr: attribute accuracy (%) by the judge; MaskCLIP: the project's MaskCLIP score (not CLIPScore); "
             "n/a: unavailable; a metric unavailable for every model has no column (reasons below).", ""]
    head = ["model"]
    for t in EVAL_MODES:
        head += [f"{t} attr", f"{t} MaskCLIP", f"{t} FID", f"{t} KID x1e3", f"{t} IS", f"{t} CLIPScore"]
    head += ["hold-out part (%)"]

    def row(name: str, get) -> list[str]:
        cells = [name]
        for t in EVAL_MODES:
            r = get(t) or {}
            ci = r.get("ci95", {})
            kidv = r.get("kid")
            cells += [_fmt(r.get("attribute_accuracy"), ci.get("attribute_accuracy"), pct=True),
                      _fmt(r.get("maskclip_score"), ci.get("maskclip_score")), _fmt(r.get("fid")),
                      _fmt(None if kidv is None else 1000 * kidv), _fmt(r.get("is")),
                      _fmt(r.get("clipscore"), ci.get("clipscore"))]
        h = get("holdout") or {}
        cells.append(_fmt(h.get("holdout_part_accuracy"), h.get("ci95", {}).get("holdout_part_accuracy"), pct=True))
        return cells

    first = next(iter(res.values()), {})
    real = {k: {"attribute_accuracy": v["real_images"]["attribute_accuracy"],
                "maskclip_score": v["real_images"]["maskclip_score"],
                "holdout_part_accuracy": v["real_images"].get("holdout_part_accuracy")} for k, v in first.items()}
    rows = [row("real images (ceiling)", real.get)] + [row(v[0], res[k].get) for k, v in VARIANTS.items() if k in res]
    keep = [j for j in range(len(head)) if j == 0 or any(r[j] != "n/a" for r in rows[1:])]  # drop all-n/a columns
    lines += ["| " + " | ".join(head[j] for j in keep) + " |", "|" + " --- |" * len(keep)]
    lines += ["| " + " | ".join(r[j] for j in keep) + " |" for r in rows]
    j = summary.get("judge") or {}
    if j:
        acc = j.get("accuracy", {})
        lines += ["", f"Judge on {j.get('samples')} real `{j.get('split')}` images: category "
                      f"{acc.get('category', 0):.3f}, colour {acc.get('color', 0):.3f} (solid garments), pattern "
                      f"{acc.get('pattern', 0):.3f}; attributes judged (>= {j.get('threshold')}): "
                      f"{', '.join(j.get('trusted', [])) or 'none'}."]
    reasons = {k: v for r in first.values() for k, v in r.get("unavailable", {}).items()}
    for k, why in sorted(reasons.items()):
        lines.append(f"- {k}: {why}")
    return "\n".join(lines) + "\n"
