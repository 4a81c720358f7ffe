"""Tokenizer quality (`armani eval recon`): PSNR, SSIM, codebook usage and perplexity on a
split, for the image tokenizer (stage 1) and the sketch tokenizer, plus a grid of
originals above their reconstructions.

With fusion (eq. 9) it also probes how much the caption decides the codes:
`text_code_change` is the share of fused (non-background) latent positions whose code
changes when the image's caption is swapped for another image's (the next one in the
batch; the mask stays), and `text_code_change_removed` the share that changes when fusion is
switched off. Both are null for a tokenizer without fusion. Where the model records a
MaskCLIP and a segmenter (a stage-1 model trained with fusion or the semantic loss), it
reports the MaskCLIP score (100 x max(D, 0), D the token-wise similarity of the caption and
the segmenter's part mask) of the reconstructions, `maskclip_score`, and of the originals,
`maskclip_score_real`: what the stage-1 semantic loss (eq. 10) asks the reconstructions to keep.

For image tokenizers it reports colour (`ColourTally`): `colour_error`, the mean CIEDE2000
between the garment's mean colour in the original and in the reconstruction,
`colour_kept`, the share of reconstructions whose main colour name is the original's, and
both per colour name (`colour_by_name`) on datasets that record one.

PSNR and SSIM are computed on images scaled to [0, 1] (peak 1). SSIM is the usual one
(Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, averaged over
channels and the valid (unpadded) window positions, then over images.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.dataset import GarmentDataset
from ..errors import UserError
from ..formats.images import encode_png_rgb, write_bytes
from ..inference.image_tokens import load_image_tokenizer
from ..models.quantize import perplexity_of
from ..report.sheet import pair_grid
from .colour import colour_error, garment_pixels, main_colour


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, for tensors in [0, 1]: 10 log10(1 / MSE)."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-12))


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per image SSIM of (B, C, H, W) tensors in [0, 1]."""
    x, y = x.double(), y.double()
    c = x.shape[1]
    g = _gauss(size, sigma).to(x.device)
    w = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(t):
        return F.conv2d(t, w, groups=c)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def evaluate_recon(model_path: str | os.PathLike, data: str | os.PathLike, split: str = "val",
                   batch_size: int = 64, max_samples: int | None = None, grid: str | os.PathLike | None = None,
                   grid_n: int = 16, maskclip=None, segmenter=None, progress=None) -> dict:
    st = load_image_tokenizer(model_path, maskclip, segmenter)
    cfg = st.vq.cfg
    sketch = st.vq.cfg.in_channels == 1
    ds = GarmentDataset(data, split, image_size=cfg.image_size, tokenizer=st.tokenizer, max_text_len=st.max_text_len,
                        augment=False, caption="first")
    if len(ds) == 0:
        raise UserError(f"{data}: split {split!r} is empty")
    n = len(ds) if max_samples is None else min(len(ds), max_samples)
    loader = DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=batch_size, shuffle=False)
    counts = torch.zeros(cfg.num_codes, dtype=torch.int64)
    ps, ss, shown = [], [], []
    probe = {"positions": 0, "swapped": 0, "fused": 0, "removed": 0}
    scored = not sketch and st.maskclip is not None and st.segmenter is not None
    ms, ms_real = [], []
    colour = ColourTally()
    seen = 0
    for batch in loader:
        x = batch["sketch"] * 2 - 1 if sketch else batch["image"]
        masks = batch["mask"].clone()
        masks[~batch["has_mask"]] = 0
        if sketch:
            idx = st.encode(x)
        elif st.vq.fuses and len(x) > 1:
            idx, changed = st.text_probe(x, batch["text"], batch["text_len"], masks, batch["has_mask"])
            for k, v in changed.items():
                probe[k] += v
        else:
            idx = st.encode(x, batch["text"], batch["text_len"], masks, batch["has_mask"])
        rec = st.decode(idx)
        if scored:
            ms.append(_maskclip_score(st, rec, batch["text"], batch["text_len"]))
            ms_real.append(_maskclip_score(st, x, batch["text"], batch["text_len"]))
        a, b = (x + 1) / 2, (rec + 1) / 2
        if not sketch:
            names = [(ds.index[seen + j].get("attributes") or {}).get("color") for j in range(len(x))]
            colour.add(a, b, masks, batch["has_mask"], names)
        seen += len(x)
        ps.append(psnr(a, b))
        ss.append(ssim(a, b))
        counts += torch.bincount(idx.flatten(), minlength=cfg.num_codes)
        if grid and sum(len(s[0]) for s in shown) < grid_n:
            shown.append((a[:grid_n], b[:grid_n]))
        if progress:
            progress(len(x))
    p, s = torch.cat(ps), torch.cat(ss)
    rep = {"split": split, "samples": n, "model": str(st.path), "input": "sketch" if sketch else "image",
           "fusion": cfg.fusion, "psnr": float(p.mean()), "psnr_std": float(p.std()) if n > 1 else 0.0,
           "ssim": float(s.mean()), "codebook_usage": float((counts > 0).float().mean()),
           "codes_used": int((counts > 0).sum()), "num_codes": cfg.num_codes,
           "perplexity": perplexity_of(counts), "tokens_per_image": cfg.grid ** 2,
           "text_code_change": probe["swapped"] / probe["positions"] if probe["positions"] else None,
           "text_code_change_removed": probe["removed"] / probe["fused"] if probe["fused"] else None,
           "maskclip_score": float(torch.cat(ms).mean()) if scored else None,
           "maskclip_score_real": float(torch.cat(ms_real).mean()) if scored else None,
           **({} if sketch else colour.report())}
    if grid:
        orig = torch.cat([o for o, _ in shown])[:grid_n]
        recs = torch.cat([r for _, r in shown])[:grid_n]
        write_bytes(grid, encode_png_rgb(pair_grid(orig, recs)))
        rep["grid"] = str(grid)
    return rep


class ColourTally:
    """The colour figure of `evaluate_recon`: per image, the CIEDE2000 between the mean colour
    of the garment's pixels (its part mask > 0, or pixels unlike the backdrop when it has no
    mask) in the original and in the reconstruction, and whether the reconstruction keeps the
    main colour name that `eval.colour.main_colour` reads from the original; per colour name
    when the dataset records one (SynthFashion's `attributes.color`)."""

    def __init__(self):
        self.rows: list[tuple[str | None, float, bool]] = []

    def add(self, orig: torch.Tensor, rec: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor,
            names: list) -> None:
        def u8(t):
            return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        o, r = u8(orig), u8(rec)
        for j in range(len(o)):
            m = masks[j].cpu().numpy() > 0 if bool(has_mask[j]) else garment_pixels(o[j])
            if not m.any():
                continue
            self.rows.append((names[j], colour_error(o[j], r[j], m), main_colour(o[j], m) == main_colour(r[j], m)))

    def report(self) -> dict:
        if not self.rows:
            return {"colour_error": None, "colour_kept": None, "colour_by_name": None}
        by: dict[str, list] = {}
        for name, de, kept in self.rows:
            if name:
                by.setdefault(name, []).append((de, kept))
        return {"colour_error": float(np.mean([r[1] for r in self.rows])),
                "colour_kept": float(np.mean([r[2] for r in self.rows])),
                "colour_by_name": {k: {"images": len(v), "colour_error": float(np.mean([d for d, _ in v])),
                                       "colour_kept": float(np.mean([c for _, c in v]))}
                                   for k, v in sorted(by.items())} or None}


def _maskclip_score(st, images: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per image, 100 x max(D, 0): the caption against the segmenter's (argmax) part mask."""
    from ..losses.contrastive import pair_similarity
    m, mv, _ = st.maskclip.encode_mask(st.segmenter(images).argmax(1))
    t, tv, _ = st.maskclip.encode_text(ids, lengths)
    return 100.0 * pair_similarity(m, mv, t, tv).clamp(min=0)
