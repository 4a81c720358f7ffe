"""The attribute judge: a small CNN that reads a garment image's category, main colour,
pattern and which parts it shows. It scores generated images for the prompted attributes
(armani.eval.judge), and is trusted only where it reads real images well."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn



@dataclass(frozen=True)
class JudgeConfig:
    image_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)  # a full-size stem, then one stride-2 level per entry
    # SynthFashion's vocabulary (armani.data.vocab: CATEGORIES, COLORS, PATTERNS, JUDGE_PARTS);
    # the model reads only the counts, and tests/test_layers.py checks they match.
    num_categories: int = 11
    num_colors: int = 13
    num_patterns: int = 4
    num_parts: int = 11
    dropout: float = 0.1
    # "level": the part map reads the stride-4 level alone; "pyramid": that level plus every
    # deeper one upsampled to it (a wider view for small parts: a logo or a button is told
    # from a pocket by where on the garment it sits).
    part_map: str = "level"
    pyramid_width: int = 64


class AttributeJudge(nn.Module):
    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg

        def conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        self.stem = nn.Sequential(*conv(3, cfg.channels[0], 1))
        self.levels = nn.ModuleList()
        cin = cfg.channels[0]
        for c in cfg.channels[1:]:  # VGG-like: a stride-2 conv and a conv per level
            self.levels.append(nn.Sequential(*conv(cin, c, 2), *conv(c, c, 1)))
            cin = c
        self.drop = nn.Dropout(cfg.dropout)
        # Category, colour, pattern: mean and max pooling of the last level side by side.
        d = 2 * cin
        self.category = nn.Linear(d, cfg.num_categories)
        self.color = nn.Linear(d, cfg.num_colors)
        self.pattern = nn.Linear(d, cfg.num_patterns)
        # Parts: a map of part logits on the stride-4 level (a button is still a cell or two
        # there), trained against the mask; a part is present where its map peaks above 0.
        self.map_level = min(1, len(self.levels) - 1)
        cmap = cfg.channels[1 + self.map_level]
        if cfg.part_map == "pyramid":
            w = cfg.pyramid_width
            self.lateral = nn.ModuleList(nn.Conv2d(c, w, 1) for c in cfg.channels[1 + self.map_level:])
            self.smooth = nn.Sequential(*conv(w, w, 1))
            cmap = w
        elif cfg.part_map != "level":
            raise ValueError(f"part_map must be 'level' or 'pyramid', not {cfg.part_map!r}")
        self.part_map = nn.Conv2d(cmap + d, cfg.num_parts, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (B, 3, S, S) in [-1, 1] -> logits per head; `parts` (B, P) are independent
        (sigmoid), the maxima of `part_map` (B, P, S/4, S/4)."""
        h, feats = self.stem(x), []
        for level in self.levels:
            h = level(h)
            feats.append(h)
        g = self.drop(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))
        f = feats[self.map_level]
        if self.cfg.part_map == "pyramid":
            size = f.shape[-2:]
            f = sum(F.interpolate(lat(h), size=size, mode="bilinear", align_corners=False) if k else lat(h)
                    for k, (lat, h) in enumerate(zip(self.lateral, feats[self.map_level:])))
            f = self.smooth(f)
        pmap = self.part_map(torch.cat([f, g[:, :, None, None].expand(-1, -1, *f.shape[-2:])], 1))
        return {"category": self.category(g), "color": self.color(g), "pattern": self.pattern(g),
                "part_map": pmap, "parts": pmap.amax((2, 3))}
