"""`armani experiment paper`: the paper's part-level claim tested on SynthFashion, with the
ablations of its Tables 1 and 2.

One dataset, one segmenter, one MaskCLIP, one sketch tokenizer and one attribute judge are
shared; the arms differ only where the paper's ablations do:

| arm | stage-1 codebook | stage-1 semantic loss | stage-2 semantic loss | stage-2 text tokens |
| --- | --- | --- | --- | --- |
| ARMANI | MaskCLIP fusion | on | on | the preset's (learned embeddings) |
| DALL-E-style baseline | plain VQGAN | off | off | learned embeddings |
| w/o MaskCLIP fusion | plain | on | on | the preset's |
| w/o stage-1 semantic loss | fusion | off | on | the preset's |
| w/o stage-2 semantic loss | fusion (ARMANI's stage 1) | on | off | the preset's |
| w/ MaskCLIP's text encoder | fusion (ARMANI's stage 1) | on | on | the frozen MaskCLIP text encoder |

A preset names its arms. Each arm has one stage-1 model and `seeds` stage-2 Transformers
(seeds 0, 1, ...), every one trained the same number of steps (no stage is cut by a clock).
Every Transformer is scored by the part-control test (`eval.part_control`): the judge's
rate of finding part p when the caption names it minus when it does not, on prompt pairs of
`val` garments, with the likelihood gap and category, colour and pattern accuracy beside
it; raw judgements per seed go to `part_control/`. `results.json` has, per arm, the effects
with 95% intervals over seeds and prompt pairs, the paired difference to the baseline, the
hold-out, the stage-1 ceiling (the judge on the arm's reconstructions), and the judge's
per-part accuracy that decides which parts are scored. The seed-0 model of each arm is also
scored as in the paper's Table 1 (`eval.generation`) for the preset's generation modes.

`summary.json` holds the probes that say whether each mechanism acts: per stage-1 model
(`probes.stage1`) PSNR, `text_code_change` (codes that change when the caption is swapped),
the reconstructions' MaskCLIP score and the stage-1 semantic loss's gradient share; per
Transformer (`probes.stage2`) the semantic loss's gradient share, the validation NLL per
image token with and without the caption, and its steps. Stages are recorded in
`summary.json` as they finish, so a re-run resumes; `--fresh` starts over. A re-run with
other evaluation settings (`--prompts`, `--inception`, `--clip`) keeps the trained models
and evaluates again.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..eval.foreign import CLIP_ENV, INCEPTION_ENV
from ..progress import bar
from .experiment_tables import part_table, table
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
BASELINE = "dalle"

# Every stage's time cap is far above what it needs (a safety net, not a budget): every arm
# trains its planned steps, and the results check that they did.
_NO_CAP = {"max_minutes": 240}
PRESETS: dict[str, dict] = {
    # 2 cores, <= 2 hours: 128 px images with stage-1 downsampling 16 (the paper's factor: 8 x 8
    # tokens), so stage 2 costs what it costs at 64 px and stage 1, the judge and the
    # segmenter see 4x the pixels. Four arms: ARMANI, the baseline, and the two mechanisms
    # (fusion, the stage-2 semantic loss) switched off one at a time.
    "cpu": {"n": 4000, "judge_n": 6000, "size": 128, "profile": "default", "seeds": 3,
            "arms": ("armani", "dalle", "no_fusion", "no_sem2"), "pairs_per_part": 16, "samples": 2,
            "modes": ("text",), "prompts": 100, "mode_samples": 1,
            "overrides": {"segmenter": {"train": {"max_steps": 300, **_NO_CAP}},
                          "maskclip": {"model": {"patch": 16}, "train": {"max_steps": 200, **_NO_CAP}},
                          "sketch-vq": {"model": {"channels": [8, 16, 32, 64, 64]},
                                        "train": {"max_steps": 200, **_NO_CAP}},
                          "vqgan": {"model": {"channels": [16, 32, 64, 128, 128]},
                                    "train": {"max_steps": 700, **_NO_CAP}},
                          "transformer": {"train": {"max_steps": 300, **_NO_CAP}},
                          "judge": {"model": {"channels": [8, 16, 32, 64, 128, 256], "part_map": "pyramid"},
                                    "train": {"max_steps": 2000, **_NO_CAP}}}},
    # One H100, <= 10 minutes planned from the CPU step times (not yet measured on one):
    # 128 px with downsampling 8 (16 x 16 tokens, the paper's count), twice the data, larger
    # batches and steps. `bash benchmarks/gpu_recipe.sh experiment` runs it.
    "gpu": {"n": 8000, "judge_n": 8000, "size": 128, "profile": None, "seeds": 3,
            "arms": ("armani", "dalle", "no_fusion", "no_sem2"), "pairs_per_part": 32, "samples": 4,
            "modes": EVAL_MODES, "prompts": 200, "mode_samples": 2,
            "overrides": {"segmenter": {"train": {"max_steps": 800, "batch_size": 64, **_NO_CAP}},
                          "maskclip": {"model": {"patch": 8}, "train": {"max_steps": 400, **_NO_CAP}},
                          "sketch-vq": {"model": {"channels": [16, 32, 64, 64]},
                                        "train": {"max_steps": 500, **_NO_CAP}},
                          "vqgan": {"model": {"channels": [32, 64, 128, 128]},
                                    "loss": {"disc_weight": 0.0, "semantic_every": 4},
                                    "train": {"max_steps": 1500, "batch_size": 32, **_NO_CAP}},
                          "transformer": {"model": {"width": 256, "layers": 6, "heads": 8},
                                          "train": {"max_steps": 600, "batch_size": 64, **_NO_CAP}},
                          "judge": {"model": {"channels": [8, 16, 32, 64, 128, 256], "part_map": "pyramid"},
                                    "train": {"max_steps": 1500, "batch_size": 64, **_NO_CAP}}}},
    # Seconds: the code path only (tests).
    "micro": {"n": 96, "judge_n": 48, "size": 32, "profile": "tiny", "seeds": 3,
              "arms": ("armani", "dalle", "no_fusion", "no_sem2"), "pairs_per_part": 2, "samples": 2,
              "modes": EVAL_MODES, "prompts": 4, "mode_samples": 1, "part_gate": 0.0,  # an untrained judge
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
    runner = StageRunner(cfg.out, {"preset": cfg.preset, "seed": cfg.seed}, cfg.fresh, cfg.quiet, log)
    with runner:
        x = _Experiment(cfg, runner)
        run = x.runner.run
        run("synth", x.synth)
        for kind in ("segmenter", "maskclip", "sketch-vq"):
            run(kind, lambda k=kind: x.train_shared(k))
        run("judge", x.train_judge)
        for name in x.stage1_names:
            run(f"stage1-{name}", lambda s=name: x.train_stage1(s))
        for v in x.arms:
            for k in range(x.preset["seeds"]):
                run(f"stage2-{v}-s{k}", lambda s=v, k=k: x.train_stage2(s, k))
        for v in x.arms:
            for k in range(x.preset["seeds"]):
                run(f"eval-{v}-s{k}", lambda s=v, k=k: x.evaluate(s, k))
        x.collect()
        x.runner.save()
        (x.out / "results.json").write_text(json.dumps(x.results, indent=2) + "\n")
        rows = {k: v[0] for k, v in VARIANTS.items()}
        (x.out / "table.md").write_text(part_table(x.results, list(VARIANTS), BASELINE) + "\n"
                                        + table(x.summary, x.n_prompts, x.preset["mode_samples"], rows, EVAL_MODES))
        return x.summary


def _seed_run(variant: str, k: int) -> str:
    return f"transformer-{variant}-s{k}"


class _Experiment:
    """The experiment's stages, each a method; they share the run folder and summary."""

    def __init__(self, cfg: ExperimentConfig, runner: StageRunner):
        self.cfg, self.runner, self.preset = cfg, runner, PRESETS[cfg.preset]
        self.out, self.summary = runner.out, runner.summary
        self.data, self.runs = self.out / "data", self.out / "runs"
        self.arms = tuple(self.preset["arms"])
        self.stage1_names = tuple(dict.fromkeys(VARIANTS[v][1] for v in self.arms))
        self.results = self.summary.setdefault("results", {})
        self.probes = self.summary.setdefault("probes", {"stage1": {}, "stage2": {}})
        self.n_prompts = cfg.prompts or self.preset["prompts"]
        self.scorers: dict = {}
        self.pairs: tuple[list, list] | None = None  # the prompt pairs, made once (`_pairs`)
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

    def _fit(self, kind: str, source, conf: str, run: str, seed: int | None = None, **parents) -> None:
        self.runner.train(kind, source, conf, self.runs / run, self.cfg.seed if seed is None else seed,
                          recipe="experiment", **parents)

    def train_shared(self, kind: str) -> None:
        self._fit(kind, self.data, stage_config(self.out, kind, kind, self.preset), kind)

    def train_judge(self) -> None:
        # The judge learns from its own render (another seed, no hold-out, so it has seen every
        # part on every garment) and is tested on the experiment's real val and test images.
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

    def train_stage2(self, variant: str, k: int) -> None:
        from ..eval.likelihood import evaluate_nll
        _, s1, sem2, text_encoder = VARIANTS[variant]
        extra = {} if sem2 else {"loss": {"semantic_every": 0}}
        if text_encoder:
            extra["model"] = {"text_encoder": text_encoder}
        conf = stage_config(self.out, f"transformer-{variant}", "transformer", self.preset, extra)
        run = self.runs / _seed_run(variant, k)
        self._fit("transformer", self.out / "tokens" / s1, conf, run.name, seed=self.cfg.seed + k)
        nll = evaluate_nll(run, self.out / "tokens" / s1, "val")["nll_per_token"]
        steps = json.loads((run / "model" / "config.json").read_text()).get("trained_steps")
        self.probes["stage2"].setdefault(variant, {})[str(k)] = {
            "nll_none": nll["none"], "nll_caption": nll["text"], "steps": steps,
            **logged_means(run, ("semantic_grad_share", "semantic_grad_cos"))}

    def _scorers(self):
        from ..eval.generation import load_scorers
        if not self.scorers:
            self.scorers["s"] = load_scorers(self.runs / "judge", self.runs / "maskclip", self.runs / "segmenter",
                                             self.cfg.inception, self.cfg.clip, self.data)
            from ..eval.judge import evaluate_judge
            self.scorers["judge"] = evaluate_judge(self.runs / "judge", self.data, ("val", "test"))
        return self.scorers

    def evaluate(self, variant: str, k: int) -> None:
        """The part-control test and the likelihood gap of one arm's seed-k Transformer (and for
        seed 0, the paper's table of the preset's generation modes)."""
        from ..eval.generation import evaluate_generation
        from ..eval.judge import Judge
        from ..eval.part_control import judge_pairs, likelihood_gap
        from ..inference.pipeline import load
        sc = self._scorers()
        g = load(self.runs / _seed_run(variant, k))  # on the GPU when there is one
        judge = sc["s"][0]["judge"] if "judge" in sc["s"][0] else Judge(self.runs / "judge", g.device)
        pairs, gap_pairs = self._pairs()
        with bar(len(pairs) * 2 * self.preset["samples"], f"part control {variant} s{k}", "img",
                 self.cfg.quiet) as pb:
            r = judge_pairs(g, judge, pairs, self.preset["samples"], self.cfg.seed, progress=pb.update)
        s1 = VARIANTS[variant][1]
        gap = likelihood_gap(g, self.out / "tokens" / s1, gap_pairs)
        rec = {"pairs": [{"part": p.part, "category": p.category, "holdout": p.holdout, "has_part": p.has_part,
                          "id": p.id} for p in pairs],
               **{key: v.tolist() for key, v in r.items()},
               "gap_pairs": [{"part": p.part, "category": p.category, "id": p.id} for p in gap_pairs],
               "gap": gap.tolist(), "sampling": g.sampling.__dict__}
        write_json(self.out / "part_control" / f"{variant}-s{k}.json", rec)
        if k == 0 and self.preset["modes"]:
            res = {}
            for mode, split in [(m, "val") for m in self.preset["modes"]] + [("text", "test_holdout")]:
                key = mode if split == "val" else "holdout"
                res[key] = evaluate_generation(
                    g, self.data, mode, split, self.n_prompts, self.preset["mode_samples"], self.cfg.seed,
                    scorers=sc["s"], html_path=self.out / "samples" / f"{variant}_{key.replace('+', '_')}.html")
            write_json(self.out / "part_control" / f"{variant}-modes.json", res)

    def _pairs(self) -> tuple[list, list]:
        """The prompt pairs of the part-control test and of the likelihood gap: the same for
        every arm and seed (what makes the comparisons paired), so made once."""
        from ..eval.generation import holdout_parts
        from ..eval.part_control import part_pairs
        if self.pairs is None:
            per, seed = self.preset["pairs_per_part"], self.cfg.seed
            self.pairs = (part_pairs(self.data, "val", per, holdout_parts(self.data), seed=seed),
                          part_pairs(self.data, "val", per, None, need_part=True, seed=seed))
        return self.pairs

    def collect(self) -> None:
        """results.json: per arm, the part-control effects over its seeds with intervals, the
        paired differences to the baseline, and what stands beside them."""
        from ..eval.part_control import arm_summary, paired_summary
        runs = {v: [json.loads((self.out / "part_control" / f"{v}-s{k}.json").read_text())
                    for k in range(self.preset["seeds"])] for v in self.arms}
        from ..eval.judge import PART_GATE, scored_parts
        judge = dict(self._scorers()["judge"])
        judge["part_gate"] = gate = self.preset.get("part_gate", PART_GATE)
        judge["scored_parts"] = scored = scored_parts(judge["parts"], gate)
        self._ceilings()
        self.results.clear()
        self.results["judge"] = judge
        self.results["settings"] = {k: self.preset[k] for k in ("n", "size", "seeds", "pairs_per_part", "samples")}
        for v in self.arms:
            s1 = VARIANTS[v][1]
            steps = [self.probes["stage2"][v][str(k)]["steps"] for k in range(self.preset["seeds"])]
            res = {"row": VARIANTS[v][0], "seeds": [self.cfg.seed + k for k in range(self.preset["seeds"])],
                   "steps": steps, **arm_summary(runs[v], scored, seed=self.cfg.seed),
                   "stage1": {"model": s1, **self.probes["stage1"][s1]}}
            if v != BASELINE and BASELINE in runs:
                res["vs_baseline"] = paired_summary(runs[v], runs[BASELINE], scored, seed=self.cfg.seed)
            modes = self.out / "part_control" / f"{v}-modes.json"
            if modes.is_file():
                res["modes"] = json.loads(modes.read_text())
            self.results[v] = res
        all_steps = {s for v in self.arms for s in self.results[v]["steps"]}
        self.results["equal_steps"] = len(all_steps) == 1

    def _ceilings(self) -> None:
        """Each stage-1 model's ceiling (the judge on its reconstructions), kept in the probes
        with the judge's checksum and computed again for another judge."""
        from ..eval.part_control import judge_reconstructions
        from ..formats.bundle import WEIGHTS, sha256_file
        sha = sha256_file(self.runs / "judge" / "model" / WEIGHTS)
        for name in self.stage1_names:
            p = self.probes["stage1"][name]
            if (p.get("judge_ceiling") or {}).get("judge_sha256") != sha:
                p["judge_ceiling"] = {**judge_reconstructions(self.runs / f"vqgan-{name}", self.runs / "judge",
                                                              self.data), "judge_sha256": sha}


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) + "\n")


def logged_means(run: Path, keys: tuple[str, ...]) -> dict[str, float]:
    """The mean over a run's `metrics.jsonl` rows of each key that was logged (probes)."""
    rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out
