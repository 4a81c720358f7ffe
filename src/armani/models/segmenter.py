"""The part segmenter (the paper's mask prediction network M, appendix B; PointRend there,
a compact U-Net here). Differentiable from pixels to logits: stages 1 and 2 use it frozen
inside the semantic loss (eq. 10, 14)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..labels import NUM_LABELS
from .layers import ResBlock, group_norm


@dataclass(frozen=True)
class SegmenterConfig:
    image_size: int = 64
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)  # one level per entry; each level halves the resolution
    blocks: int = 1                             # residual blocks per level
    num_labels: int = NUM_LABELS
    dropout: float = 0.0


class Segmenter(nn.Module):
    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.cfg = cfg
        ch = list(cfg.channels)
        self.stem = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            blocks = [ResBlock(cin if b == 0 else c, c, cfg.dropout) for b in range(cfg.blocks)]
            self.down.append(nn.Sequential(*blocks))
            cin = c
            if i < len(ch) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(ch[-1], ch[-1], cfg.dropout)
        self.up = nn.ModuleList()
        for i in range(len(ch) - 2, -1, -1):
            self.up.append(nn.Sequential(*[ResBlock(ch[i + 1] + ch[i] if b == 0 else ch[i], ch[i], cfg.dropout)
                                           for b in range(cfg.blocks)]))
        self.head = nn.Sequential(group_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], cfg.num_labels, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps, finest first: (B, C_i, H / 2^i, W / 2^i). Images in [-1, 1]."""
        h = self.stem(x)
        feats = []
        for i, block in enumerate(self.down):
            h = block(h)
            feats.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> logits (B, num_labels, H, W)."""
        feats = self.features(x)
        h = self.mid(feats[-1])
        for block, skip in zip(self.up, reversed(feats[:-1])):
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], 1))
        return self.head(h)
