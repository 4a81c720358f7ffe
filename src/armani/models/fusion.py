"""Eq. 9's inputs at inference and in training: the part masks of a batch (given, or the
frozen segmenter's where a sample has none) and the MaskCLIP text aligned to each latent
position. Pure functions over frozen modules; used by stage-1 training and by `tokenize`."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .vqgan import aligned_text


def predicted_or_true_masks(batch: dict, segmenter: nn.Module | None) -> torch.Tensor:
    """Ground-truth masks; where a sample has none, the frozen segmenter's prediction."""
    mask = batch["mask"]
    if not bool(batch["has_mask"].all()):
        if segmenter is None:
            raise UserError("some samples have no part mask and no segmenter was given")
        with torch.no_grad():
            pred = segmenter(batch["image"]).argmax(1)
        mask = torch.where(batch["has_mask"][:, None, None], mask, pred)
    return mask


def fusion_inputs(maskclip: nn.Module, mask: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor):
    """MaskCLIP tokens of a batch and eq. 9's aligned text per latent position."""
    with torch.no_grad():
        m, mv, _ = maskclip.encode_mask(mask)
        t, tv, _ = maskclip.encode_text(ids, lengths)
        text, fuse = aligned_text(m, mv, t, tv)
    return text, fuse, t, tv
