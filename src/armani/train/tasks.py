"""The segmenter and MaskCLIP as training tasks for the shared loop."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig, stage_configs
from ..data.dataset import IGNORE_INDEX, GarmentDataset, dataset_tokenizer
from ..data.tokenizer import CaptionTokenizer
from ..formats.dataset import read_meta
from ..formats.pipeline import load_model
from ..models.fusion import predicted_or_true_masks
from ..models.maskclip import MaskCLIP, MaskCLIPConfig
from ..models.segmenter import Segmenter, SegmenterConfig
from .loop import Task


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Class-balanced cross entropy plus a soft Dice term: both keep tiny parts (buttons,
    logos: a few pixels each) from being drowned by the large ones. Class weights are the
    inverse square root of each label's pixel share in the image, capped at 20.

    Every term is computed per image and then averaged, so the loss of a batch split over
    several processes (DDP averages their gradients) equals the loss of the whole batch.
    """
    b, k = logits.shape[:2]
    valid = target != IGNORE_INDEX
    tgt = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(tgt, k).permute(0, 3, 1, 2).float() * valid[:, None]  # (B, K, H, W)
    counts = onehot.sum((2, 3))  # (B, K)
    share = counts / counts.sum(1, keepdim=True).clamp(min=1)
    weight = torch.where(counts > 0, (share.clamp(min=1e-8) * k).rsqrt(), torch.zeros_like(share)).clamp(max=20)
    ce_pix = F.cross_entropy(logits.float(), tgt, reduction="none")  # (B, H, W)
    w_pix = weight.gather(1, tgt.flatten(1)).view_as(ce_pix) * valid
    ce = ((ce_pix * w_pix).sum((1, 2)) / w_pix.sum((1, 2)).clamp(min=1e-8)).mean()
    prob = logits.float().softmax(1) * valid[:, None]
    inter = (prob * onehot).sum((2, 3))
    denom = prob.sum((2, 3)) + counts
    present = (counts > 0).float()
    dice_k = 1 - (2 * inter + 1) / (denom + 1)
    dice = ((dice_k * present).sum(1) / present.sum(1).clamp(min=1)).mean()
    return {"loss": ce + dice, "ce": ce.detach(), "dice": dice.detach()}


@dataclass
class SegmenterTask(Task):
    data: Path = Path()
    train_cfg: TrainConfig = field(default_factory=TrainConfig)

    def build_model(self) -> nn.Module:
        return Segmenter(self.model_config)

    def train_dataset(self):
        return GarmentDataset(self.data, "train", image_size=self.model_config.image_size, seed=self.train_cfg.seed,
                              require_mask=True, captions=False)

    def compute_loss(self, model, batch):
        return seg_loss(model(batch["image"]), batch["mask"])


def segmenter_task(data: str | os.PathLike, config=None, *, maskclip=None, segmenter=None,
                   **train_overrides) -> tuple[SegmenterTask, TrainConfig]:
    """The part segmenter on a dataset's masks (it takes no trained parents)."""
    model_cfg, _, train_cfg = stage_configs("segmenter", config, SegmenterConfig, train_overrides=train_overrides)
    read_meta(data)
    task = SegmenterTask(kind="segmenter", model_config=model_cfg, data=Path(data), train_cfg=train_cfg,
                         preprocessing={"image_size": model_cfg.image_size, "letterbox_fill": 255,
                                        "pixel_range": [-1, 1]})
    task.channels_last = True
    return task, train_cfg


@dataclass
class MaskCLIPTask(Task):
    data: Path = Path()
    train_cfg: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: CaptionTokenizer | None = None
    segmenter: Path | None = None
    _seg: nn.Module | None = None

    def build_model(self) -> nn.Module:
        return MaskCLIP(self.model_config)

    def train_dataset(self):
        return GarmentDataset(self.data, "train", image_size=self.model_config.image_size,
                              tokenizer=self.tokenizer, max_text_len=self.model_config.max_text_len,
                              seed=self.train_cfg.seed, require_mask=self.segmenter is None)

    def masks(self, batch) -> torch.Tensor:
        """Ground-truth masks; where a sample has none, the frozen segmenter's prediction."""
        if self.segmenter is None or bool(batch["has_mask"].all()):
            return batch["mask"]
        if self._seg is None:
            self._seg = load_model(self.segmenter, "segmenter").model.requires_grad_(False).eval()
        return predicted_or_true_masks(batch, self._seg.to(batch["mask"].device))

    def compute_loss(self, model, batch):
        return model(self.masks(batch), batch["text"], batch["text_len"])


def maskclip_task(data: str | os.PathLike, config=None, *, maskclip=None, segmenter: str | os.PathLike | None = None,
                  **train_overrides) -> tuple[MaskCLIPTask, TrainConfig]:
    """MaskCLIP on a dataset's masks and captions; `segmenter` predicts the masks samples lack.
    The pooled (global CLIP) baseline is the config's `model.loss: "global"`."""
    model_cfg, _, train_cfg = stage_configs("maskclip", config, MaskCLIPConfig, train_overrides=train_overrides)
    tok = dataset_tokenizer(data)
    # The text side follows the dataset's tokenizer; image side and widths follow the config.
    model_cfg = replace(model_cfg, vocab_size=tok.vocab_size)
    if model_cfg.loss == "global" and model_cfg.text_layers == 0:
        # The pooled baseline reads the caption at [EOS]: without attention that token knows
        # nothing of the words, so the baseline gets the contextual encoder it needs.
        model_cfg = replace(model_cfg, text_layers=2)
    train_cfg = replace(train_cfg, max_text_len=model_cfg.max_text_len)
    parents = {"segmenter": segmenter} if segmenter else {}
    task = MaskCLIPTask(kind="maskclip", model_config=model_cfg, data=Path(data), train_cfg=train_cfg,
                        tokenizer=tok, segmenter=Path(segmenter) if segmenter else None,
                        preprocessing={"image_size": model_cfg.image_size, "patch": model_cfg.patch,
                                       "tokenizer": "tokenizer.json", "max_text_len": model_cfg.max_text_len},
                        parents=parents, files={"tokenizer.json": tok.to_str()})
    return task, train_cfg
