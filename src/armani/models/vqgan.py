"""Stage 1 (section 3.3): a VQGAN whose encoder features are fused with the caption's words
before quantization (eq. 9), so its codebook is cross-modal.

E: image -> z_hat (B, C, h, w); fusion: z~_i = (z_hat_i + P(x_j*)) / 2 where x_j* is the
text token MaskCLIP aligns to mask token i (same pixels as latent position i); quantize
z~ (eq. 1); G: codes -> image. Fusion `none` gives the plain VQGAN baseline. The same
class, with one input channel and fusion off, is the sketch tokenizer.

The paper *averages* the visual token and its word: the two carry equal weight. With the
default `fusion_mode: "balanced"` that holds by construction. Fusion happens where the
codes are looked up (after `quant_conv`, so no learned layer between the average and the
lookup can shrink the word away); the word goes through a fixed random orthonormal
projection P (a learned one could map every word onto one vector, a constant offset that
carries no words) and is rescaled to the visual vector's length, so
z~_i = (z_i + |z_i| P x_j* / |P x_j*|) / 2 and each term is half of the fused vector.
`fusion_mode: "legacy"` averages a learned, unnormalised projection of the word with the
encoder output before `quant_conv`; bundles whose config has no `fusion_mode` were trained
with it and load in it. It lets the word shrink: there it is about 7% of the visual
feature's norm, and swapping the caption for another garment's changes under 10% of the
codes (docs/results.md).

Fusion at background positions: a mask token that covers only background is not a token
MaskCLIP can match (it never wins nor enters a similarity), so those latents are left
unfused (z~_i = z_hat_i).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .layers import ResBlock, SelfAttention, group_norm
from .maskclip import best_text_index
from .quantize import VectorQuantizer


@dataclass(frozen=True)
class VQGANConfig:
    image_size: int = 64
    in_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 128, 256)  # one level per entry; all but the last halve the size
    blocks: int = 1                 # residual blocks per level; 0: plain strided convs between levels
                                    # (residual blocks and attention only at the lowest resolution)
    attention: bool = True          # self-attention at the lowest resolution
    z_channels: int = 128           # width of z_hat, where fusion happens
    num_codes: int = 1024
    code_dim: int = 32              # low-dimensional lookup
    normalize_codes: bool = True    # cosine lookup on L2-normalised codes
    beta: float = 0.25              # commitment weight
    restart_every: int = 50         # dead-code restart period in training steps (0: off)
    dead_threshold: float = 0.03    # a code picked less than this many times per batch on average is dead
    fusion: str = "maskclip"        # or "none": the plain VQGAN codebook
    fusion_mode: str = "balanced"   # "balanced": equal weight, fixed projection; "legacy": see above
    fusion_weight: float = 0.5      # share of the word in the fused vector (eq. 9 averages: 0.5)
    text_dim: int = 64              # width of the MaskCLIP tokens that are fused
    dropout: float = 0.0

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    @property
    def grid(self) -> int:
        return self.image_size // self.factor


class _Attn2d(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = group_norm(c)
        self.attn = SelfAttention(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)
        return x + self.attn(t).transpose(1, 2).reshape(b, c, h, w)


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        ch = list(cfg.channels)
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)]
        cin = ch[0]
        for i, c in enumerate(ch):
            for _ in range(cfg.blocks):
                layers.append(ResBlock(cin, c, cfg.dropout))
                cin = c
            if i < len(ch) - 1:
                if cfg.blocks:
                    layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                else:  # plain levels: one strided conv that also widens
                    layers += [nn.Conv2d(cin, ch[i + 1], 4, stride=2, padding=1), nn.SiLU()]
                    cin = ch[i + 1]
        layers += [ResBlock(cin, cin, cfg.dropout)]
        if cfg.attention:
            layers.append(_Attn2d(cin))
        layers += [ResBlock(cin, cin, cfg.dropout), group_norm(cin), nn.SiLU(),
                   nn.Conv2d(cin, cfg.z_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        ch = list(cfg.channels)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.z_channels, ch[0], 3, padding=1), ResBlock(ch[0], ch[0], cfg.dropout)]
        if cfg.attention:
            layers.append(_Attn2d(ch[0]))
        layers.append(ResBlock(ch[0], ch[0], cfg.dropout))
        cin = ch[0]
        for i, c in enumerate(ch):
            for _ in range(cfg.blocks):
                layers.append(ResBlock(cin, c, cfg.dropout))
                cin = c
            if i < len(ch) - 1:  # the upsampling conv already narrows to the next level's width
                if cfg.blocks:
                    layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, ch[i + 1], 3, padding=1)]
                else:  # plain levels: one transposed conv
                    layers += [nn.ConvTranspose2d(cin, ch[i + 1], 4, stride=2, padding=1), nn.SiLU()]
                cin = ch[i + 1]
        if cfg.blocks:
            layers += [group_norm(cin), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.out = nn.Conv2d(cin, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(z))


def aligned_text(mask_tokens: torch.Tensor, mask_valid: torch.Tensor, text_tokens: torch.Tensor,
                 text_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 9's x_j*: for each mask token its most similar valid text token.

    mask_tokens (B, N, D), text_tokens (B, L, D) L2-normalised; *_valid bool.
    Returns (B, N, D) text vectors and (B, N) bool: positions to fuse (a valid mask token and
    a caption with at least one valid word). Padding never wins the argmax.
    """
    j = best_text_index(mask_tokens, text_tokens, text_valid)  # (B, N)
    picked = torch.gather(text_tokens, 1, j[..., None].expand(-1, -1, text_tokens.shape[-1]))
    fuse = mask_valid & text_valid.any(1, keepdim=True)
    return picked, fuse


def fixed_projection(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer), drawn from
    a fixed seed: distinct words stay distinct, and nothing about it is learned."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(max(rows, cols), min(rows, cols), generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(a)  # orthonormal columns
    return (q if rows >= cols else q.t()).float().contiguous()


class VQModel(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        if cfg.fusion not in ("maskclip", "none"):
            raise UserError("fusion must be 'maskclip' or 'none'")
        if cfg.fusion_mode not in ("balanced", "legacy"):
            raise UserError("fusion_mode must be 'balanced' or 'legacy'")
        if not 0.0 <= cfg.fusion_weight <= 1.0:
            raise UserError("fusion_weight must lie in [0, 1]")
        if cfg.image_size % cfg.factor:
            raise UserError(f"image_size {cfg.image_size} is not a multiple of the factor {cfg.factor}")
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.code_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.code_dim, cfg.z_channels, 1)
        self.quantizer = VectorQuantizer(cfg.num_codes, cfg.code_dim, cfg.beta, cfg.normalize_codes,
                                         cfg.restart_every, cfg.dead_threshold)
        self.text_proj = None
        if cfg.fusion == "maskclip" and cfg.fusion_mode == "legacy":
            self.text_proj = nn.Linear(cfg.text_dim, cfg.z_channels)
        elif cfg.fusion == "maskclip":  # saved with the weights, so a bundle never depends on the RNG
            self.register_buffer("word_proj", fixed_projection(cfg.text_dim, cfg.code_dim))

    @property
    def fuses(self) -> bool:
        return self.cfg.fusion == "maskclip"

    def fuse(self, z: torch.Tensor, text: torch.Tensor | None, fuse: torch.Tensor | None) -> torch.Tensor:
        """Eq. 9 on z (B, C, h, w) with aligned text vectors (B, h*w, D) and where to fuse (B, h*w):
        z + f * w * (t - z), i.e. (z + t) / 2 where fused with w = 1/2, z elsewhere."""
        if not self.fuses or text is None:
            return z
        b, c, h, w = z.shape
        f = fuse.view(b, 1, h, w).to(z.dtype)
        if self.text_proj is not None:  # legacy: a learned projection into the encoder's width
            t = self.text_proj(text.to(z.dtype)).transpose(1, 2).reshape(b, c, h, w)
            return z + f * 0.5 * (t - z)
        t = (text.to(z.dtype) @ self.word_proj.to(z.dtype)).transpose(1, 2).reshape(b, c, h, w)
        t = t / t.norm(dim=1, keepdim=True).clamp(min=1e-6) * z.norm(dim=1, keepdim=True).detach()
        return z + f * self.cfg.fusion_weight * (t - z)

    def encode(self, x: torch.Tensor, text: torch.Tensor | None = None, fuse: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Image (B, C_in, H, W) in [-1, 1] -> (quantized (B, code_dim, h, w), indices (B, h, w), terms)."""
        return self.quantize(self.encoder(x), text, fuse)

    def quantize(self, z: torch.Tensor, text: torch.Tensor | None = None, fuse: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder features z (B, z_channels, h, w) -> fused (eq. 9) and quantized (eq. 1)."""
        if self.text_proj is not None:  # legacy: fused before quant_conv
            return self.quantizer(self.quant_conv(self.fuse(z, text, fuse)))
        return self.quantizer(self.fuse(self.quant_conv(z), text, fuse))

    def decode(self, q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(q))

    def decode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, h, w) -> images (B, C_in, H, W)."""
        return self.decode(self.quantizer.lookup(idx))

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None, fuse: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        q, idx, terms = self.encode(x, text, fuse)
        return self.decode(q), idx, terms

    def last_layer(self) -> torch.Tensor:
        """The decoder's output weight, where the adaptive GAN weight is measured."""
        return self.decoder.out.weight


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al.): a real/fake logit per overlapping patch. GroupNorm instead of
    BatchNorm, so the result does not depend on how a batch is split across processes."""

    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, layers):
            stride = 2 if i < layers - 1 else 1
            mods += [nn.Conv2d(c, min(c * 2, 8 * width), 4, stride, 1), group_norm(min(c * 2, 8 * width)),
                     nn.LeakyReLU(0.2)]
            c = min(c * 2, 8 * width)
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


