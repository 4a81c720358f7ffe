"""Encode a dataset once into token ids for stage 2 (`armani tokenize`).

On-disk format of a token folder (all arrays are `.npy`, read with allow_pickle=False):

    tokens.json                  format, grids, codebook sizes, splits and their sizes, the
                                 bundles used (path + sha256), the caption tokenizer file
    tokenizer.json               the caption tokenizer (the stage-1 bundle's = MaskCLIP's)
    {split}.image.npy            (N, h*w) uint16  stage-1 codes, row-major over the latent grid
    {split}.sketch.npy           (N, hs*ws) uint16 sketch codes (when a sketch tokenizer was given)
    {split}.text.npy             (N, C, L) int32  caption token ids, C captions per sample
    {split}.text_len.npy         (N, C) int16     caption lengths (0: no caption in that slot)
    {split}.index.npy            (N,) int64       row of the sample in the dataset split

Image codes are computed with fusion (eq. 9) on the sample's first caption (for
SynthFashion the detailed one, which names every part), without augmentation.

Partial images (section 3.4) are not stored: they are the image codes at kept positions and
a dedicated EMPTY token elsewhere. A keep-mask maps to token positions by area: a latent
cell is kept when at least half of its pixels are kept (see `keep_cells`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (PIPELINE_FILE, WEIGHTS, atomic_dir, component_dir, load_bundle, pipeline_dir, resolve_bundle,
                         sha256_file)
from .data.dataset import GarmentDataset
from .data.format import read_meta
from .data.tokenizer import CaptionTokenizer
from .fusion import fusion_inputs, predicted_or_true_masks

TOKENS_FORMAT = "armani-tokens/1"


@dataclass
class Stage1:
    """A stage-1 image tokenizer with what its fusion needs."""

    vq: nn.Module
    maskclip: nn.Module | None
    segmenter: nn.Module | None
    tokenizer: CaptionTokenizer | None
    max_text_len: int
    path: Path

    @torch.no_grad()
    def encode(self, images: torch.Tensor, ids: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
               masks: torch.Tensor | None = None, has_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> code ids (B, h, w). With fusion, captions (ids,
        lengths) are required; masks are used where given, else the segmenter predicts them."""
        text = fuse = None
        if self.vq.fuses:
            text, fuse = self.fusion(images, ids, lengths, masks, has_mask)
        _, idx, _ = self.vq.encode(images, text, fuse)
        return idx

    @torch.no_grad()
    def fusion(self, images: torch.Tensor, ids: torch.Tensor | None, lengths: torch.Tensor | None,
               masks: torch.Tensor | None = None, has_mask: torch.Tensor | None = None):
        """Eq. 9's inputs for a batch: aligned word vectors (B, h*w, D) and where to fuse (B, h*w)."""
        if ids is None or self.maskclip is None:
            raise ValueError("this tokenizer fuses captions into its codes: it needs the caption and MaskCLIP")
        b = images.shape[0]
        if masks is None:
            masks = torch.zeros(b, *images.shape[-2:], dtype=torch.long, device=images.device)
            has_mask = torch.zeros(b, dtype=torch.bool, device=images.device)
        mask = predicted_or_true_masks({"image": images, "mask": masks, "has_mask": has_mask}, self.segmenter)
        text, fuse, _, _ = fusion_inputs(self.maskclip, mask, ids, lengths)
        return text, fuse

    @torch.no_grad()
    def text_probe(self, images: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                   masks: torch.Tensor | None = None, has_mask: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, dict[str, int]]:
        """How much the caption decides the codes. Returns the batch's codes (B, h, w), as
        `encode` gives them, and over its fused latent positions (B >= 2) the counts of codes
        that change when each image's caption is swapped for the next image's (the mask
        stays) and when fusion is switched off."""
        text, fuse = self.fusion(images, ids, lengths, masks, has_mask)
        other, other_fuse = self.fusion(images, ids.roll(1, 0), lengths.roll(1, 0), masks, has_mask)
        both = fuse & other_fuse  # the other caption's words, aligned to this image's own mask tokens
        z = self.vq.encoder(images)
        codes = self.vq.quantize(z, text, fuse)[1]
        own = codes.flatten(1)
        swapped = self.vq.quantize(z, other, both)[1].flatten(1)
        removed = self.vq.quantize(z)[1].flatten(1)
        return codes, {"positions": int(both.sum()), "swapped": int((own != swapped)[both].sum()),
                       "fused": int(fuse.sum()), "removed": int((own != removed)[fuse].sum())}

    @torch.no_grad()
    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        return self.vq.decode_indices(idx).clamp(-1, 1)


def load_stage1(path: str | os.PathLike, maskclip: str | os.PathLike | None = None,
                segmenter: str | os.PathLike | None = None, device="cpu") -> Stage1:
    """A stage-1 (or sketch) bundle with the MaskCLIP and segmenter it was trained with (the
    paths its config records, unless others are given)."""
    pipe = pipeline_dir(path)
    if pipe is not None:  # a pipeline or quickstart folder: its image tokenizer and the models beside it
        meta = json.loads((pipe / PIPELINE_FILE).read_text())
        parts = meta["components"]
        get = lambda name, kind: (load_bundle(component_dir(pipe, parts[name]), kind, device).model  # noqa: E731
                                  if parts.get(name) else None)
        clip = load_bundle(maskclip, "maskclip", device).model if maskclip else get("maskclip", "maskclip")
        seg = load_bundle(segmenter, "segmenter", device).model if segmenter else get("segmenter", "segmenter")
        return Stage1(get("vqgan", "vqgan"), clip, seg, CaptionTokenizer.from_file(pipe / "tokenizer.json"),
                      int(meta["max_text_len"]), pipe / parts["vqgan"])
    b = load_bundle(path, "vqgan", device)
    parents = b.meta.get("parents", {})
    clip = seg = tok = None
    max_len = int(b.meta.get("preprocessing", {}).get("max_text_len", 64))
    src = maskclip or parents.get("maskclip", {}).get("path")
    if b.model.fuses:
        if src is None:
            raise ValueError(f"{b.path} fuses MaskCLIP tokens but records no MaskCLIP; pass --maskclip")
        _check_parent(src, parents.get("maskclip"), maskclip is None)
        clip = load_bundle(src, "maskclip", device).model
    elif src is not None and Path(src).exists():  # a plain codebook trained with the semantic loss
        clip = load_bundle(src, "maskclip", device).model
    seg_src = segmenter or parents.get("segmenter", {}).get("path")
    if seg_src is not None and Path(seg_src).exists():
        seg = load_bundle(seg_src, "segmenter", device).model
    if (b.path / "tokenizer.json").is_file():
        tok = CaptionTokenizer.from_file(b.path / "tokenizer.json")
    return Stage1(b.model, clip, seg, tok, max_len, b.path)


def _check_parent(src, record: dict | None, recorded: bool) -> None:
    p = resolve_bundle(src)
    if recorded and record and sha256_file(p / WEIGHTS) != record.get("sha256"):
        raise ValueError(f"the MaskCLIP at {p} is not the one this tokenizer was trained with "
                         "(its weights changed); pass the right one with --maskclip")


def keep_cells(keep: torch.Tensor, grid: int) -> torch.Tensor:
    """Pixel keep-masks (B, 1, H, W) or (B, H, W) in {0, 1} -> kept latent cells (B, grid*grid)
    bool: a cell is kept when at least half of its pixels are."""
    if keep.dim() == 3:
        keep = keep[:, None]
    return (F.adaptive_avg_pool2d(keep.float(), grid) >= 0.5).flatten(1)


def partial_tokens(image_tokens: torch.Tensor, kept: torch.Tensor, empty_id: int) -> torch.Tensor:
    """Section 3.4's partial-image condition: the image codes (B, N) where `kept` (B, N) is
    true and `empty_id` (a token outside the codebook, chosen by stage 2) elsewhere."""
    return torch.where(kept, image_tokens, torch.full_like(image_tokens, empty_id))


def tokenize_dataset(model: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                     sketch_model: str | os.PathLike | None = None, splits: list[str] | None = None,
                     batch_size: int = 64, maskclip=None, segmenter=None, progress=None) -> dict:
    """Write a token folder (see the module docstring); returns its tokens.json content."""
    data, out = Path(data), Path(out)
    meta = read_meta(data)
    st = load_stage1(model, maskclip, segmenter)
    sk = load_stage1(sketch_model) if sketch_model else None
    tok = st.tokenizer
    if tok is None:
        if not meta.get("tokenizer"):
            raise ValueError(f"{data} has no tokenizer; run `armani data tokenizer {data}` first")
        tok = CaptionTokenizer.from_file(data / meta["tokenizer"])
    size = st.vq.cfg.image_size
    if sk is not None and sk.vq.cfg.image_size != size:
        raise ValueError(f"the sketch tokenizer works at {sk.vq.cfg.image_size} px, the image tokenizer at {size}")
    available = list(meta.get("splits", {}) or {})
    splits = splits or [s for s in ("train", "val", "test", "test_holdout") if s in available]
    info = {"format": TOKENS_FORMAT, "data": str(data), "image_size": size,
            "image_grid": st.vq.cfg.grid, "image_codes": st.vq.cfg.num_codes,
            "sketch_grid": sk.vq.cfg.grid if sk else None, "sketch_codes": sk.vq.cfg.num_codes if sk else None,
            "max_text_len": st.max_text_len, "vocab_size": tok.vocab_size, "tokenizer": "tokenizer.json",
            "image_model": {"path": str(st.path), "sha256": sha256_file(st.path / WEIGHTS)},
            "sketch_model": {"path": str(sk.path), "sha256": sha256_file(sk.path / WEIGHTS)} if sk else None,
            "fusion_caption": "first", "splits": {}}
    with atomic_dir(out) as tmp:
        for split in splits:
            ds = GarmentDataset(data, split, image_size=size, tokenizer=tok, max_text_len=st.max_text_len,
                                augment=False, caption="first")
            n = len(ds)
            grid2 = st.vq.cfg.grid ** 2
            img = np.zeros((n, grid2), np.uint16)
            skt = np.zeros((n, sk.vq.cfg.grid ** 2), np.uint16) if sk else None
            caps_n = max((len(ds.index[i]["captions"]) for i in range(n)), default=1)
            text = np.zeros((n, caps_n, st.max_text_len), np.int32)
            tlen = np.zeros((n, caps_n), np.int16)
            for start in range(0, n, batch_size):
                rows = list(range(start, min(n, start + batch_size)))
                items = [ds[i] for i in rows]
                batch = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask", "has_mask", "text",
                                                                            "text_len", "sketch")}
                masks = batch["mask"].clone()
                masks[~batch["has_mask"]] = 0
                idx = st.encode(batch["image"], batch["text"], batch["text_len"], masks, batch["has_mask"])
                img[rows] = idx.flatten(1).numpy().astype(np.uint16)
                if sk is not None:
                    skt[rows] = sk.encode(batch["sketch"] * 2 - 1).flatten(1).numpy().astype(np.uint16)
                for r, i in enumerate(rows):
                    for c, cap in enumerate(ds.index[i]["captions"]):
                        ids, k = tok.encode(cap, st.max_text_len)
                        text[i, c], tlen[i, c] = ids, k
                if progress:
                    progress(len(rows))
            np.save(tmp / f"{split}.image.npy", img)
            if skt is not None:
                np.save(tmp / f"{split}.sketch.npy", skt)
            np.save(tmp / f"{split}.text.npy", text)
            np.save(tmp / f"{split}.text_len.npy", tlen)
            np.save(tmp / f"{split}.index.npy", np.arange(n, dtype=np.int64))
            info["splits"][split] = n
        tok.save(tmp / "tokenizer.json")
        (tmp / "tokens.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def read_token_info(root: str | os.PathLike) -> dict:
    """A token folder's tokens.json, checked; reads no arrays."""
    p = Path(root) / "tokens.json"
    if not p.is_file():
        raise FileNotFoundError(f"{root} is not a token folder (no tokens.json); make one with `armani tokenize`")
    info = json.loads(p.read_text())
    if info.get("format") != TOKENS_FORMAT:
        raise ValueError(f"{root}: unknown token format {info.get('format')!r}")
    return info


class TokenSet:
    """Read access to one split of a token folder."""

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        self.root = Path(root)
        self.info = read_token_info(root)
        if split not in self.info["splits"]:
            raise ValueError(f"{root} has no split {split!r}; it has {', '.join(self.info['splits'])}")
        self.split = split

        def load(name):
            f = self.root / f"{split}.{name}.npy"
            return np.load(f, allow_pickle=False) if f.is_file() else None
        self.image, self.sketch = load("image"), load("sketch")
        self.text, self.text_len = load("text"), load("text_len")

    def __len__(self) -> int:
        return int(self.image.shape[0])
