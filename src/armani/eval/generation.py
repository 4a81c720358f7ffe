"""`armani eval generate`: generate for a split's prompts and score the samples.

Prompts are the first caption (the detailed one) of the first `n` samples of the split; the
sketch and the partial image of the conditioned tasks come from that sample's photo (the
partial keeps a band across the chest, a quarter of the image, as in training). Metrics:

- `attribute_accuracy`: the attribute judge (`armani train judge`) reads the generated image;
  the share of the prompt's stated attributes it finds, averaged per prompt then over
  prompts. Only attributes the judge reads reliably on real images count (see
  `eval.judge`); the same figure on the real images of the prompts is given as the ceiling.
- `maskclip_score`: the project's own MaskCLIP, *not* CLIPScore: 100 x max(D, 0) per sample,
  D the token-wise similarity (eq. 3-5) of the caption and the frozen segmenter's part mask
  of the image (argmax labels). ARMANI's semantic losses optimise D itself (with soft masks),
  so this score favours the models trained with them.
- `sample_variety`: how different the samples of one prompt are, the mean absolute pixel
  difference (0-1 scale) between every pair of a prompt's samples; needs `samples` >= 2. Lower
  sampling temperatures raise the other figures and lower this one.
- `fid`, `kid`, `is` from a local Inception; `clipscore` from a local CLIP (eval.foreign).
  FID and KID compare the samples with the real images of the same prompts.
- `fidelity`: does the mode follow its condition (`eval.fidelity`): silhouette IoU against the
  garment the condition came from, PSNR and colour error on a partial image's kept cells,
  the named colour's share; each beside `ceiling`, the same figure for the real images'
  stage-1 reconstructions.

Each figure has a 95% bootstrap interval over prompts. Unavailable metrics are null, with
the reason under `unavailable`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.synth import parse_holdout
from ..data.transforms import letterbox
from ..errors import UserError
from ..formats.dataset import Index, read_meta
from ..formats.images import BadFile, read_image, read_mask
from ..report.html import samples_page
from .metrics import bootstrap_ci, clip_score, fid, inception_score, kid

METRICS = ("attribute_accuracy", "maskclip_score", "sample_variety", "fid", "kid", "is", "clipscore")


@dataclass
class Prompt:
    id: str
    caption: str
    attributes: dict
    image: np.ndarray  # the real photo, at the model's size
    silhouette: np.ndarray | None = None  # (S, S) bool: the garment's pixels (its mask > 0), when it has a mask


def load_prompts(data: str | os.PathLike, split: str, n: int | None, size: int) -> list[Prompt]:
    idx = Index(data, split)
    if not len(idx):
        raise UserError(f"{data} has no {split!r} samples")
    out = []
    for i in range(len(idx) if n is None else min(n, len(idx))):
        rec = idx[i]
        sil = None
        if rec.get("mask"):
            try:
                sil = letterbox(read_mask(Path(data) / rec["mask"]), size, fill=0, nearest=True) > 0
            except BadFile:
                sil = None
        out.append(Prompt(rec["id"], rec["captions"][0], rec.get("attributes") or {},
                          letterbox(read_image(Path(data) / rec["image"]), size), sil))
    return out


def generate_for(g, prompts: list[Prompt], mode: str, samples: int = 1, seed: int = 0, batch: int = 32,
                 progress=None) -> tuple[np.ndarray, list]:
    """(len(prompts) * samples, S, S, 3) uint8, prompt-major; and the Conditions of each prompt.
    Prompts are sampled `batch` rows at a time from one seeded stream
    (`ArmaniPipeline.sample_rows`); the result depends on the seed and the batch size."""
    conds = [g.prepare_mode(mode, p.caption, p.image) for p in prompts]
    rows = [c for c in conds for _ in range(samples)]
    return g.sample_rows(rows, seed, batch=batch, progress=progress), conds


class MaskCLIPScorer:
    """The project's own caption-image score (see the module docstring)."""

    def __init__(self, maskclip: str | os.PathLike, segmenter: str | os.PathLike, device="cpu"):
        from ..data.tokenizer import CaptionTokenizer
        from ..formats.pipeline import load_model
        mc = load_model(maskclip, "maskclip", device)
        self.maskclip = mc.model.eval()
        self.segmenter = load_model(segmenter, "segmenter", device).model.eval()
        self.tokenizer = CaptionTokenizer.of_bundle(mc.path)
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, captions: list[str], batch: int = 64) -> np.ndarray:
        from ..data.dataset import to_unit
        from ..losses.contrastive import pair_similarity
        size, max_len = self.maskclip.cfg.image_size, self.maskclip.cfg.max_text_len
        out = []
        for i in range(0, len(images), batch):
            x = torch.stack([to_unit(letterbox(im, size)) for im in images[i:i + batch]]).to(self.device)
            labels = self.segmenter(x).argmax(1)
            m, mv, _ = self.maskclip.encode_mask(labels)
            enc = [self.tokenizer.encode(c, max_len) for c in captions[i:i + batch]]
            ids = torch.from_numpy(np.stack([e[0] for e in enc])).to(self.device)
            lengths = torch.tensor([e[1] for e in enc], device=self.device)
            t, tv, _ = self.maskclip.encode_text(ids, lengths)
            out.append(pair_similarity(m, mv, t, tv).double().cpu().numpy())
        return 100.0 * np.clip(np.concatenate(out), 0, None)


def holdout_parts(data: str | os.PathLike) -> dict[str, set[str]]:
    """category -> parts held out of training with it (from the dataset's synth settings)."""
    spec = (read_meta(data).get("synth") or {}).get("holdout")
    pairs = parse_holdout(",".join(spec)) if isinstance(spec, list) else parse_holdout(spec)
    out: dict[str, set[str]] = {}
    for cat, part in pairs:
        out.setdefault(cat, set()).add(part)
    return out


def _summary(values: np.ndarray, groups: np.ndarray, seed: int) -> tuple[float | None, list | None]:
    ok = ~np.isnan(values)
    if not ok.any():
        return None, None
    lo, hi = bootstrap_ci(values[ok], groups[ok], seed=seed)
    return float(values[ok].mean()), [lo, hi]


def sample_variety(images: np.ndarray, samples: int) -> np.ndarray:
    """Per prompt, the mean absolute pixel difference (0-1) over every pair of its samples."""
    x = images.reshape(-1, samples, *images.shape[1:]).astype(np.float32) / 255.0
    i, j = np.triu_indices(samples, 1)
    return np.stack([np.abs(g[i] - g[j]).mean() for g in x]).astype(np.float64)


def score_images(images: np.ndarray, prompts: list[Prompt], samples: int, *, judge=None, judge_report=None,
                 maskclip=None, inception=None, clip=None, seed: int = 0, holdout: dict | None = None,
                 reasons: dict | None = None) -> dict:
    """Every available metric of images (prompt-major, `samples` per prompt)."""
    from .judge import attribute_hits, prompted
    groups = np.repeat(np.arange(len(prompts)), samples)
    captions = [p.caption for p in prompts for _ in range(samples)]
    res: dict = {k: None for k in METRICS}
    ci: dict = {}
    unavailable = dict(reasons or {})
    if judge is not None:
        trusted = set(judge_report["trusted"])
        reading = judge.read(images)
        per, per_kind = [], {}
        held, held_parts = [], {}
        for j in range(len(images)):
            p = prompts[groups[j]]
            want = prompted(p.caption, p.attributes) if p.attributes.get("category") else {}
            hits = attribute_hits(reading, j, want)
            use = [v for k, v in hits.items() if k in trusted]
            per.append(np.mean(use) if use else np.nan)
            for k, v in hits.items():
                per_kind.setdefault(k, []).append(v)
            if holdout is not None:
                parts = holdout.get(p.attributes.get("category"), set())
                named = [k for k in hits if k.startswith("part:") and k[5:] in parts]
                held.append(np.mean([hits[k] for k in named]) if named else np.nan)
                for k in named:
                    held_parts.setdefault(f"{p.attributes['category']}:{k[5:]}", []).append(hits[k])
        per = np.asarray(per, np.float64)
        if not judge_report["usable"]:
            unavailable["attribute_accuracy"] = (
                f"the judge reads category {judge_report['accuracy']['category']:.3f} and colour "
                f"{judge_report['accuracy']['color']:.3f} of real images right (needs {judge_report['threshold']})")
        else:
            res["attribute_accuracy"], ci["attribute_accuracy"] = _summary(per, groups, seed)
        res["attribute_hits"] = {k: float(np.mean(v)) for k, v in sorted(per_kind.items())}
        if holdout is not None:
            h = np.asarray(held, np.float64)
            res["holdout_part_accuracy"], ci["holdout_part_accuracy"] = _summary(h, groups, seed)
            res["holdout_pairs"] = {k: {"accuracy": float(np.mean(v)), "samples": len(v)}
                                    for k, v in sorted(held_parts.items())}
    if samples >= 2:
        res["sample_variety"], ci["sample_variety"] = _summary(sample_variety(images, samples),
                                                               np.arange(len(prompts)), seed)
    else:
        unavailable["sample_variety"] = "needs 2 or more samples per prompt"
    if maskclip is not None:
        ms = maskclip(images, captions)
        res["maskclip_score"], ci["maskclip_score"] = _summary(ms, groups, seed)
    if inception is not None:
        feats, probs = inception(images)
        real, _ = inception(np.stack([p.image for p in prompts]))
        res["fid"] = fid(real, feats)
        res["kid"] = kid(real, feats, subsets=50, subset_size=min(1000, len(real), len(feats)), seed=seed)[0]
        res["is"] = inception_score(probs, splits=min(10, len(probs)))[0]
    if clip is not None:
        cs = clip_score(clip.images(images), clip.texts(captions))
        res["clipscore"], ci["clipscore"] = _summary(cs, groups, seed)
    res["ci95"] = ci
    res["unavailable"] = {k: v for k, v in unavailable.items() if res.get(k) is None}
    return res


def load_scorers(judge=None, maskclip=None, segmenter=None, inception=None, clip=None, data=None,
                 device=None) -> tuple[dict, dict]:
    """The scoring networks that can be had, and a reason for each that cannot (on the GPU
    when there is one, unless `device` says otherwise)."""
    from ..inference.pipeline import resolve_device
    device = str(resolve_device(device))
    from .foreign import ClipScorer, Inception, Unavailable
    from .judge import Judge, evaluate_judge
    sc: dict = {}
    why: dict = {}
    if judge and not (data and len(Index(data, "test", where=lambda r: bool(r.get("attributes"))))):
        why["attribute_accuracy"] = "the judge is validated on real test images with attributes, and the data has none"
    elif judge:
        sc["judge"] = Judge(judge, device)
        sc["judge_report"] = evaluate_judge(judge, data, "test")
    else:
        why["attribute_accuracy"] = "no attribute judge: pass --judge RUN (armani train judge)"
    if maskclip and segmenter:
        sc["maskclip"] = MaskCLIPScorer(maskclip, segmenter, device)
    else:
        why["maskclip_score"] = ("needs a MaskCLIP and a segmenter (the model records none: pass --maskclip and "
                                 "--segmenter)")
    for name, cls, arg, keys in (("inception", Inception, inception, ("fid", "kid", "is")),
                                 ("clip", ClipScorer, clip, ("clipscore",))):
        try:
            sc[name] = cls(arg, device)
        except Unavailable as e:
            why.update({k: str(e) for k in keys})
    return sc, why


def model_scorers(g) -> tuple[str | None, str | None]:
    """The MaskCLIP and segmenter a pipeline carries (its stage-1 fusion models), if any."""
    st = g.image_tokenizer
    from ..formats.bundle import load_bundle
    if g.provenance is not None:  # loaded from a pipeline folder: its armani.json as read (and checked) at load
        parts = g.info["components"]
        mc, seg = parts.get("maskclip"), parts.get("segmenter")
        return (str(g.path / mc) if mc else None), (str(g.path / seg) if seg else None)
    parents = load_bundle(st.path, "vqgan").meta.get("parents", {})
    return (parents.get("maskclip", {}).get("path"), parents.get("segmenter", {}).get("path"))


def mode_fidelity(g, prompts: list[Prompt], conds: list, images: np.ndarray, samples: int, seed: int = 0,
                  recons: dict | None = None, judge=None) -> dict:
    """`eval.fidelity`'s figures of the samples (mean and 95% interval over prompts) and,
    under `ceiling`, of the prompts' stage-1 reconstructions with the same conditions
    (`recons`: reconstructions already made for these prompts, keyed by whether they fuse
    the caption; filled in here). `judge`: a `Judge` trusted to read the category, or None."""
    from .fidelity import FIDELITY, per_image, reconstructions
    empty = g.transformer.cfg.image_empty
    groups = np.repeat(np.arange(len(prompts)), samples)
    got = per_image(images, prompts, conds, samples, empty, judge)
    recons = {} if recons is None else recons
    fuse = any(c.text for c in conds)
    if fuse not in recons:
        recons[fuse] = reconstructions(g, prompts, fuse=fuse)
    top = per_image(recons[fuse], prompts, conds, 1, empty, judge)
    out: dict = {"ci95": {}, "ceiling": {}}
    for k in FIDELITY:
        out[k], out["ci95"][k] = _summary(got[k], groups, seed)
        out["ceiling"][k] = _summary(top[k], np.arange(len(prompts)), seed)[0]
    return out


def category_judge(judge, data: str | os.PathLike, device=None, loaded=None, report: dict | None = None):
    """(a `Judge` to read the category of samples, or None; what was decided, for the report).
    `judge`: a judge run or bundle, "auto" (the packaged SynthFashion judge on SynthFashion
    data, else none) or None. It is used only where it reads the category of the data's real
    `test` images right in `judge.TRUST` of them or more. `loaded` and `report`: the `Judge` and
    its `evaluate_judge` report when the caller has them already (not loaded or measured twice)."""
    from .judge import TRUST, Judge, evaluate_judge, shipped_judge
    if judge == "auto":
        judge = shipped_judge() if read_meta(data).get("source") == "synthfashion" else None
        if judge is None:
            return None, {"used": False, "why": "no judge for this data (the packaged one reads SynthFashion)"}
    if judge is None:
        return None, {"used": False, "why": "no attribute judge given"}
    name = "packaged SynthFashion judge" if Path(judge) == shipped_judge() else str(judge)
    if not len(Index(data, "test", where=lambda r: bool((r.get("attributes") or {}).get("category")))):
        return None, {"used": False, "judge": name, "why": "the data has no test images with a category"}
    rep = report if report is not None else evaluate_judge(judge, data, "test")
    acc = rep["accuracy"]["category"]
    info = {"judge": name, "split": "test", "samples": rep["samples"], "category_accuracy_real": acc,
            "threshold": TRUST, "used": acc >= TRUST}
    if acc < TRUST:
        info["why"] = f"the judge reads the category of {acc:.1%} of real test images (needs {TRUST:.0%})"
        return None, info
    return (loaded if loaded is not None else Judge(judge, device or "cpu")), info


def fidelity_by_mode(model, data: str | os.PathLike, modes=None, split: str = "val", n: int = 48, samples: int = 2,
                     seed: int = 0, progress=None, judge="auto") -> dict:
    """mode -> `mode_fidelity` on the split's first `n` prompts, `samples` images each: whether
    each generation mode follows its condition, beside its ceiling. The category is read by
    `judge` (see `category_judge`); no other scorer network."""
    from ..inference.modes import MODES
    from ..inference.pipeline import load
    g = model if not isinstance(model, (str, os.PathLike)) else load(model)
    prompts = load_prompts(data, split, n, g.image_size)
    reader, info = category_judge(judge, data, g.device)
    out, recons = {}, {}  # one set of reconstructions with the caption fused, one without, for every mode
    for mode in modes or MODES:
        images, conds = generate_for(g, prompts, mode, samples, seed)
        out[mode] = mode_fidelity(g, prompts, conds, images, samples, seed, recons, reader)
        if progress:
            progress(1)
    return {"split": split, "prompts": len(prompts), "samples_per_prompt": samples, "keep": g.sampling.keep,
            "category_judge": info, "modes": out}


def evaluate_generation(model, data: str | os.PathLike, mode: str = "text", split: str = "val", n: int | None = 100,
                        samples: int = 1, seed: int = 0, judge=None, maskclip=None, segmenter=None, inception=None,
                        clip=None, scorers: tuple[dict, dict] | None = None, html_path=None, progress=None,
                        device=None) -> dict:
    from ..inference.pipeline import load, resolve_device
    device = str(resolve_device(device))
    g = model if not isinstance(model, (str, os.PathLike)) else load(model, device)
    prompts = load_prompts(data, split, n, g.image_size)
    if scorers is None:
        own_mc, own_seg = model_scorers(g)
        scorers = load_scorers(judge, maskclip or own_mc, segmenter or own_seg, inception, clip, data, device)
    sc, why = scorers
    images, conds = generate_for(g, prompts, mode, samples, seed, progress=progress)
    if judge:  # the judge given reads the category where it reads real images' well enough
        reader, info = category_judge(judge, data, device, sc["judge"], sc["judge_report"]) \
            if sc.get("judge") is not None else (None, {
            "used": False, "why": why.get("attribute_accuracy", "")})
    else:
        reader, info = category_judge("auto", data, device)
    fidelity = {**mode_fidelity(g, prompts, conds, images, samples, seed, judge=reader), "category_judge": info}
    holdout = holdout_parts(data) if split == "test_holdout" else None
    kw = dict(judge=sc.get("judge"), judge_report=sc.get("judge_report"), maskclip=sc.get("maskclip"),
              inception=sc.get("inception"), clip=sc.get("clip"), seed=seed, holdout=holdout, reasons=why)
    res = score_images(images, prompts, samples, **kw)
    real = score_images(np.stack([p.image for p in prompts]), prompts, 1, **{**kw, "inception": None, "clip": None})
    out = {"mode": mode, "split": split, "prompts": len(prompts), "samples_per_prompt": samples, "seed": seed,
           "model": str(g.path) if g.path else None, "sampling": g.sampling.__dict__,
           **{k: res.get(k) for k in METRICS}, **{k: v for k, v in res.items() if k not in METRICS},
           "real_images": {k: real.get(k) for k in ("attribute_accuracy", "maskclip_score", "holdout_part_accuracy",
                                                    "holdout_pairs", "attribute_hits")},
           "fidelity": fidelity, "judge": sc.get("judge_report")}
    if html_path:
        samples_page(html_path, out, prompts, conds, images, samples, METRICS)
    return out
