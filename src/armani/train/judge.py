"""The attribute judge as a training task: SynthFashion's attributes, learnt from images
blurred and noised like decoded ones."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig, stage_configs
from ..data.attributes import JudgeDataset
from ..data.vocab import JUDGE_PARTS
from ..formats.dataset import read_meta
from ..labels import LABEL_ID
from ..models.judge import AttributeJudge, JudgeConfig
from .loop import Task


def degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training-time blur and noise on a batch in [-1, 1], so that the judge also reads decoded
    (softer, noisier) images: half the images are down- and upsampled by one random factor
    (to between 1/2 and all of the size), half get Gaussian noise of a random strength."""
    b, s = x.shape[0], x.shape[-1]
    small = int(torch.randint(s // 2, s, (1,), generator=gen))
    soft = F.interpolate(F.interpolate(x, size=(small, small), mode="bilinear", align_corners=False, antialias=True),
                         size=(s, s), mode="bilinear", align_corners=False)
    pick = (torch.rand(b, 1, 1, 1, generator=gen) < 0.5).to(x.device)
    x = torch.where(pick, soft, x)
    sigma = (torch.rand(b, 1, 1, 1, generator=gen) * 6 + 2) / 127.5 * (torch.rand(b, 1, 1, 1, generator=gen) < 0.5)
    return (x + sigma.to(x.device) * torch.randn(x.shape, generator=gen).to(x.device)).clamp(-1, 1)


PART_IDS = torch.tensor([LABEL_ID[p] for p in JUDGE_PARTS])


def part_cells(mask: torch.Tensor, size: int) -> torch.Tensor:
    """(B, S, S) label ids -> (B, P, size, size): does each cell of a size x size grid show the part?"""
    onehot = (mask[:, None] == PART_IDS.to(mask.device)[None, :, None, None]).float()
    return F.adaptive_max_pool2d(onehot, size)


def judge_loss(out: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
    terms = {k: F.cross_entropy(out[k].float(), batch[k]) for k in ("category", "color", "pattern")}
    terms["parts"] = F.binary_cross_entropy_with_logits(out["parts"].float(), batch["parts"])
    pm = out["part_map"].float()
    terms["part_map"] = F.binary_cross_entropy_with_logits(pm, part_cells(batch["mask"], pm.shape[-1]))
    loss = sum(terms.values())
    return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


@dataclass
class JudgeTask(Task):
    data: Path = Path()
    train_cfg: TrainConfig = field(default_factory=TrainConfig)

    def build_model(self) -> nn.Module:
        return AttributeJudge(self.model_config)

    def train_dataset(self):
        return JudgeDataset(self.data, "train", self.model_config.image_size, seed=self.train_cfg.seed)

    def compute_loss(self, model, batch):
        gen = torch.Generator().manual_seed(self.train_cfg.seed * 1_000_003 + self.step)
        return judge_loss(model(degrade(batch["image"], gen)), batch)


def judge_task(data: str | os.PathLike, config=None, *, maskclip=None, segmenter=None,
               **train_overrides) -> tuple[JudgeTask, TrainConfig]:
    """The attribute judge on SynthFashion's attributes (it takes no trained parents)."""
    model_cfg, _, train_cfg = stage_configs("judge", config, JudgeConfig, train_overrides=train_overrides)
    read_meta(data)
    JudgeDataset(data, "train", model_cfg.image_size)  # fails early on data without attributes
    task = JudgeTask(kind="judge", model_config=model_cfg, data=Path(data), train_cfg=train_cfg,
                     preprocessing={"image_size": model_cfg.image_size, "letterbox_fill": 255, "pixel_range": [-1, 1]})
    task.channels_last = True
    return task, train_cfg
