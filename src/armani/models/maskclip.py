"""MaskCLIP (section 3.2, Fig. 4): a mask encoder and a text encoder whose tokens are
aligned token by token, so that "zipper" lands on the zipper's mask tokens.

Mask tokens: the one-hot part mask is cut into patches at the stride of the stage-1
encoder, so mask token i covers the same pixels as latent position i (what makes eq. 9
well defined). A patch with only background is not a token that can be matched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..labels import NUM_LABELS
from ..losses.contrastive import global_contrastive_loss, tokenwise_contrastive_loss
from .layers import TransformerBlock, key_padding_bias


@dataclass(frozen=True)
class MaskCLIPConfig:
    image_size: int = 64
    patch: int = 8                  # = the stage-1 encoder's downsampling factor
    num_labels: int = NUM_LABELS
    mask_width: int = 128
    mask_layers: int = 2
    mask_heads: int = 4
    vocab_size: int = 2048
    max_text_len: int = 64
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    embed_dim: int = 64
    dropout: float = 0.0
    loss: str = "tokenwise"         # or "global": the pooled CLIP baseline the paper argues against

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


class MaskEncoder(nn.Module):
    def __init__(self, cfg: MaskCLIPConfig):
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise UserError(f"image_size {cfg.image_size} is not a multiple of patch {cfg.patch}")
        self.cfg = cfg
        self.embed = nn.Conv2d(cfg.num_labels, cfg.mask_width, cfg.patch, stride=cfg.patch)
        self.pos = nn.Parameter(torch.randn(cfg.grid * cfg.grid, cfg.mask_width) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(cfg.mask_width, cfg.mask_heads, dropout=cfg.dropout)
                                     for _ in range(cfg.mask_layers)])
        self.ln = nn.LayerNorm(cfg.mask_width)
        self.proj = nn.Linear(cfg.mask_width, cfg.embed_dim, bias=False)

    def forward(self, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, K, H, W) label probabilities -> (tokens (B, N, D) normalised, valid (B, N), pooled (B, D))."""
        fg = 1.0 - onehot[:, 0:1]
        valid = F.avg_pool2d(fg, self.cfg.patch).flatten(1) > 1e-3  # (B, N): patch holds some garment
        x = self.embed(onehot).flatten(2).transpose(1, 2) + self.pos  # (B, N, C)
        bias = key_padding_bias(valid | ~valid.any(1, keepdim=True))  # an all-background mask attends everywhere
        for blk in self.blocks:
            x = blk(x, bias)
        x = self.proj(self.ln(x))
        w = valid.float()[..., None]
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1)
        return F.normalize(x, dim=-1), valid, F.normalize(pooled, dim=-1)


class TextEncoder(nn.Module):
    """CLIP-style text Transformer (paper: 12 layers, 8 heads, width 512), bidirectional
    over the caption, so each word's token sees its context ("white" of "white buttons")."""

    def __init__(self, cfg: MaskCLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.text_width)
        self.pos = nn.Parameter(torch.randn(cfg.max_text_len, cfg.text_width) * 0.01)
        self.blocks = nn.ModuleList([TransformerBlock(cfg.text_width, cfg.text_heads, dropout=cfg.dropout)
                                     for _ in range(cfg.text_layers)])
        self.ln = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids (B, L) as `CaptionTokenizer.encode` makes them ([BOS] words [EOS] pad...), lengths (B,)
        -> (tokens (B, L, D) normalised, valid (B, L) word tokens only, pooled (B, D) at [EOS])."""
        b, n = ids.shape
        pos = torch.arange(n, device=ids.device)[None]
        inside = pos < lengths[:, None]
        words = inside & (pos > 0) & (pos < lengths[:, None] - 1)  # not [BOS], [EOS] nor padding
        x = self.tok(ids) + self.pos[:n]
        for blk in self.blocks:
            x = blk(x, key_padding_bias(inside))
        x = self.proj(self.ln(x))
        eos = x[torch.arange(b, device=ids.device), (lengths - 1).clamp(min=0)]
        return F.normalize(x, dim=-1), words, F.normalize(eos, dim=-1)


def best_text_index(mask_tokens: torch.Tensor, text_tokens: torch.Tensor, text_valid: torch.Tensor) -> torch.Tensor:
    """Eq. 9's alignment: for each mask token (B, N, D), the index (B, N) of its most similar
    valid text token (B, L, D), by dot product. Padding never wins."""
    s = torch.einsum("bnd,bld->bnl", mask_tokens, text_tokens)
    return s.masked_fill(~text_valid[:, None, :], float("-inf")).argmax(-1)


class MaskCLIP(nn.Module):
    def __init__(self, cfg: MaskCLIPConfig):
        super().__init__()
        if cfg.loss not in ("tokenwise", "global"):
            raise UserError("loss must be 'tokenwise' or 'global'")
        self.cfg = cfg
        self.mask_encoder = MaskEncoder(cfg)
        self.text_encoder = TextEncoder(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def onehot(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, W) label ids -> (B, K, H, W) float; label ids >= K (ignore) count as background."""
        m = torch.where(mask < self.cfg.num_labels, mask, torch.zeros_like(mask))
        return F.one_hot(m.long(), self.cfg.num_labels).permute(0, 3, 1, 2).float()

    def encode_mask(self, mask: torch.Tensor):
        """Label ids (B, H, W) or label probabilities (B, K, H, W), e.g. a segmenter's softmax."""
        return self.mask_encoder(self.onehot(mask) if mask.dim() == 3 else mask)

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor):
        return self.text_encoder(ids, lengths)

    def align(self, mask_tokens: torch.Tensor, text_tokens: torch.Tensor, text_valid: torch.Tensor) -> torch.Tensor:
        return best_text_index(mask_tokens, text_tokens, text_valid)

    def forward(self, mask: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        m, mv, mp = self.encode_mask(mask)
        t, tv, tp = self.encode_text(ids, lengths)
        scale = self.logit_scale.clamp(max=math.log(100.0))
        if self.cfg.loss == "global":
            return global_contrastive_loss(mp, tp, scale)
        return tokenwise_contrastive_loss(m, mv, t, tv, scale)
