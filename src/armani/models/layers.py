"""Building blocks shared by the models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(c: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (batch-size independent, so
    results do not depend on how a batch is split across processes)."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if c % g == 0 and (c // g >= 4 or g == 1))
    return nn.GroupNorm(groups, c)


class ResBlock(nn.Module):
    """Pre-activation residual block: (GN, SiLU, conv3x3) x 2 plus a 1x1 skip when widths differ."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        self.n1, self.c1 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(self.drop(F.silu(self.n2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention on (B, T, C) with scaled_dot_product_attention."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal and attn_mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(width), SelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_mask, causal)
        return x + self.mlp(self.ln2(x))


def key_padding_bias(valid: torch.Tensor) -> torch.Tensor:
    """(B, T) bool of keys that may be attended to -> (B, 1, 1, T) bool mask for SDPA."""
    return valid[:, None, None, :]
