"""Stage-1 encoding at inference: images (and their captions, for the fused codebook of
eq. 9) to code ids and back, and the partial-image condition.

Partial images (section 3.4) are the image codes at kept positions and a dedicated EMPTY
token elsewhere. A keep-mask maps to token positions by area: a latent cell is kept when at
least half of its pixels are kept (see `keep_cells`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tokenizer import CaptionTokenizer
from ..errors import UserError
from ..formats.bundle import WEIGHTS, sha256_file
from ..formats.pipeline import PipelineFolder, find_model, load_model, pipeline_dir, read_pipeline
from ..models.fusion import fusion_inputs, predicted_or_true_masks


@dataclass
class ImageTokenizer:
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
            raise UserError("this tokenizer fuses captions into its codes: it needs the caption and MaskCLIP")
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


def load_image_tokenizer(path: str | os.PathLike, maskclip: str | os.PathLike | None = None,
                         segmenter: str | os.PathLike | None = None, device="cpu") -> ImageTokenizer:
    """A stage-1 (or sketch) bundle with the MaskCLIP and segmenter it was trained with (the
    paths its config records, unless others are given); or a pipeline folder's stage 1."""
    pipe = pipeline_dir(path)
    if pipe is not None:
        given = {"maskclip": maskclip, "segmenter": segmenter}
        folder = read_pipeline(pipe, device, skip=("transformer", "sketch-vq", *(k for k, v in given.items() if v)))
        return tokenizers_of(folder, *(load_model(v, k, device).model if v else None for k, v in given.items()))[0]
    b = load_model(path, "vqgan", device)
    parents = b.meta.get("parents", {})
    clip = seg = tok = None
    max_len = int(b.meta.get("preprocessing", {}).get("max_text_len", 64))
    src = maskclip or parents.get("maskclip", {}).get("path")
    if b.model.fuses:
        if src is None:
            raise UserError(f"{b.path} fuses MaskCLIP tokens but records no MaskCLIP; pass --maskclip")
        _check_parent(src, parents.get("maskclip"), maskclip is None)
        clip = load_model(src, "maskclip", device).model
    elif src is not None and Path(src).exists():  # a plain codebook trained with the semantic loss
        clip = load_model(src, "maskclip", device).model
    seg_src = segmenter or parents.get("segmenter", {}).get("path")
    if seg_src is not None and Path(seg_src).exists():
        seg = load_model(seg_src, "segmenter", device).model
    if (b.path / "tokenizer.json").is_file():
        tok = CaptionTokenizer.from_file(b.path / "tokenizer.json")
    return ImageTokenizer(b.model, clip, seg, tok, max_len, b.path)


def _check_parent(src, record: dict | None, recorded: bool) -> None:
    p = find_model(src, "maskclip")
    if recorded and record and sha256_file(p / WEIGHTS) != record.get("sha256"):
        raise UserError(f"the MaskCLIP at {p} is not the one this tokenizer was trained with "
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


def tokenizers_of(folder: PipelineFolder, maskclip: nn.Module | None = None, segmenter: nn.Module | None = None
                  ) -> tuple[ImageTokenizer, ImageTokenizer | None]:
    """A read pipeline folder's image tokenizer (with its MaskCLIP and segmenter, unless others
    are given) and its sketch tokenizer (None when it has none or it was skipped)."""
    m, max_len = folder.models, int(folder.meta["max_text_len"])
    image = ImageTokenizer(m["vqgan"], maskclip or m.get("maskclip"), segmenter or m.get("segmenter"),
                           CaptionTokenizer.from_file(folder.tokenizer_file), max_len, folder.dirs["vqgan"])
    sk = m.get("sketch-vq")
    sketch = ImageTokenizer(sk, None, None, None, max_len, folder.dirs["sketch-vq"]) if sk is not None else None
    return image, sketch
