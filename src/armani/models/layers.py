"""Building blocks shared by the models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


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


class KVCache:
    """Keys and values of every layer of a causal Transformer, preallocated for `max_len`
    positions; `length` is how many are filled."""

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int, device, dtype):
        shape = (layers, batch, heads, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.aligned: torch.Tensor | None = None  # a model's per-position condition inputs, set by its prefill

    def rows(self, start: int, stop: int) -> KVCache:
        """A cache over batch rows start..stop-1 of this one, sharing its memory."""
        view = KVCache.__new__(KVCache)
        view.k, view.v, view.length = self.k[:, start:stop], self.v[:, start:stop], self.length
        view.aligned = None if self.aligned is None else self.aligned[start:stop]
        return view


class SelfAttention(nn.Module):
    """Multi-head self-attention on (B, T, C) with scaled_dot_product_attention. With a
    `cache` (causal models), the new keys and values are stored at the cache's end and the
    new queries attend to everything before them."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if width % heads:
            raise UserError(f"width {width} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, causal: bool = False,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        if cache is not None:
            start = cache.length
            cache.k[layer, :, :, start:start + t] = k
            cache.v[layer, :, :, start:start + t] = v
            k, v = cache.k[layer, :, :, :start + t], cache.v[layer, :, :, :start + t]
            if start > 0:  # is_causal would align the mask to the top left: spell it out
                causal = False
                if t > 1:
                    attn_mask = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(start)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal and attn_mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, c))

    def decode_static(self, x: torch.Tensor, cache: KVCache, layer: int, slot: torch.Tensor,
                      visible: torch.Tensor) -> torch.Tensor:
        """One position (B, 1, C) with shapes that never change from step to step, so a CUDA
        graph can replay it: its key and value go to cache slot `slot` (a (1,) long tensor on
        the device, not a Python int), and the query attends to the whole preallocated cache
        through `visible` ((1, 1, 1, max_len) bool: the slots filled so far and this one)."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        ks, vs = cache.k[layer], cache.v[layer]
        ks.index_copy_(2, slot, k.to(ks.dtype))
        vs.index_copy_(2, slot, v.to(vs.dtype))
        y = F.scaled_dot_product_attention(q, ks, vs, attn_mask=visible)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(width), SelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, causal: bool = False,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_mask, causal, cache, layer)
        return x + self.mlp(self.ln2(x))

    def decode_static(self, x: torch.Tensor, cache: KVCache, layer: int, slot: torch.Tensor,
                      visible: torch.Tensor) -> torch.Tensor:
        x = x + self.attn.decode_static(self.ln1(x), cache, layer, slot, visible)
        return x + self.mlp(self.ln2(x))


def key_padding_bias(valid: torch.Tensor) -> torch.Tensor:
    """(B, T) bool of keys that may be attended to -> (B, 1, 1, T) bool mask for SDPA."""
    return valid[:, None, None, :]
