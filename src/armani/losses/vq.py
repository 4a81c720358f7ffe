"""Stage-1 losses (eq. 10-11): reconstruction, perceptual, PatchGAN hinge with the adaptive
weight, and the semantic loss through the frozen segmenter and MaskCLIP.

No pretrained network can be downloaded here, so the perceptual term takes any frozen
feature network: by default the project's own segmenter encoder (trained on the same
garments), or VGG16 from a local safetensors file when a user has one.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..colourspace import D65_WHITE, SRGB_TO_XYZ
from ..errors import MissingInput, UserError
from .contrastive import pair_similarity, tokenwise_contrastive_loss


@dataclass(frozen=True)
class VQGANLossConfig:
    lambda1: float = 0.9            # eq. 11: weight of the VQGAN loss
    lambda2: float = 0.1            # eq. 11: weight of the semantic loss (eq. 10), the paper's value
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    perceptual: str = "segmenter"   # "segmenter", "vgg16" (needs vgg_weights) or "none"
    perceptual_every: int = 1       # the perceptual term on every Nth step only (at its weight as given)
    vgg_weights: str | None = None  # local .safetensors with torchvision's VGG16 key names
    disc_weight: float = 0.5
    disc_start: int = 1000          # optimizer steps before the adversarial terms switch on
    disc_width: int = 64
    disc_layers: int = 3
    semantic_every: int = 1         # compute the semantic loss every N steps (0: never)
    semantic: str = "similarity"    # eq. 10: 1 - D of matched pairs, or "contrastive": MaskCLIP's symmetric
                                    # cross entropy over the batch (cost 2-3 dB PSNR here: docs/results.md)
    colour_weight: float = 0.0      # low-frequency colour term (`colour_loss`): weight, 0 = off
    colour_pool: int = 8            # its block size in pixels (8: one colour per latent cell of a 64 px f8 model)
    probe_every: int = 50           # log the semantic loss's gradient share every N steps (0: never)
    balance_edges: bool = False     # sketches: weight edge and background pixels equally in L1


def balanced_l1(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """L1 for sparse binary maps in {-1, 1} (edge maps): edge pixels (> 0) and background
    pixels each carry half of the loss, so an all-background output is no easy minimum."""
    err = (x - recon).abs()
    edge = x > 0
    n_edge = edge.sum().clamp(min=1)
    n_bg = (~edge).sum().clamp(min=1)
    return 0.5 * (err[edge].sum() / n_edge + err[~edge].sum() / n_bg)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [-1, 1] -> CIELAB (D65), differentiable; the same conversion as
    `eval.colour.rgb_to_lab`."""
    c = ((x.float() + 1) / 2).clamp(0, 1)
    c = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp(min=1e-6) ** 2.4)
    m = torch.tensor(SRGB_TO_XYZ, device=x.device) / torch.tensor(D65_WHITE, device=x.device)[:, None]
    xyz = torch.einsum("ij,bjhw->bihw", m, c)
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(xyz > eps, xyz.clamp(min=eps) ** (1 / 3), (kappa * xyz + 16) / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def colour_loss(x: torch.Tensor, recon: torch.Tensor, pool: int = 8) -> torch.Tensor:
    """L1 in CIELAB (divided by 100) between `pool` x `pool` block means of the original and
    the reconstruction: the low-frequency colour the eye reads as the garment's, which the
    per-pixel L1 weighs no more than any edge and the segmenter's features not at all."""
    if pool > 1:
        x, recon = F.avg_pool2d(x.float(), pool), F.avg_pool2d(recon.float(), pool)
    return (rgb_to_lab(x) - rgb_to_lab(recon)).abs().mean() / 100.0


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def adaptive_weight(rec: torch.Tensor, g: torch.Tensor, last: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """Esser et al.'s balance: |grad rec| / |grad g| at the decoder's last layer, detached."""
    gr = torch.autograd.grad(rec, last, retain_graph=True)[0]
    gg = torch.autograd.grad(g, last, retain_graph=True)[0]
    w = gr.norm() / (gg.norm() + 1e-4)
    return w.clamp(0.0, max_weight).detach()


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


class FeaturePerceptual(nn.Module):
    """LPIPS-style distance on a frozen network's feature maps: channel-normalised features,
    squared differences, averaged over positions and summed over layers (no learned
    per-channel weights: there is no human-judgement data to fit them to)."""

    def __init__(self, features):
        super().__init__()
        self.features = features  # callable: images in [-1, 1] -> list of (B, C, h, w)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.features(x), self.features(y)
        return sum((_unit(a) - _unit(b)).pow(2).sum(1).mean((1, 2)) for a, b in zip(fx, fy)).mean()


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_VGG_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's numbering


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk with torchvision's layer numbering (`features.N.weight`),
    so converted torchvision weights load as they are."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _VGG_TAPS:
                out.append(h)
        return out


def load_vgg16(path: str | os.PathLike) -> VGG16Features:
    """VGG16 features from a local .safetensors file (keys `features.N.*` or `N.*`). Pickled
    .pth files are refused: convert one once with `safetensors.torch.save_file`."""
    p = str(path)
    if not os.path.isfile(p):
        raise MissingInput(f"VGG16 weights not found: {p}")
    if not p.endswith(".safetensors"):
        raise UserError(f"{p}: VGG16 weights must be a .safetensors file (pickled files are never loaded)")
    state = load_file(p)
    state = {(k if k.startswith("features.") else f"features.{k}"): v for k, v in state.items()
             if k.startswith("features.") or k.split(".")[0].isdigit()}
    net = VGG16Features()
    missing, _ = net.load_state_dict(state, strict=False)
    if missing:
        raise UserError(f"{p}: not VGG16 feature weights (missing {missing[:3]})")
    return net.eval().requires_grad_(False)


def reconstruction_mask_tokens(images: torch.Tensor, segmenter: nn.Module, maskclip: nn.Module):
    """MaskCLIP mask tokens (B, N, D) and validity (B, N) of the segmenter's soft mask of
    `images`; differentiable with respect to `images` through both frozen networks."""
    size = maskclip.cfg.image_size
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    probs = segmenter(images).float().softmax(1)
    m, mv, _ = maskclip.encode_mask(probs)
    return m, mv


def semantic_loss(images: torch.Tensor, segmenter: nn.Module, maskclip: nn.Module, text_tokens: torch.Tensor,
                  text_valid: torch.Tensor) -> torch.Tensor:
    """1 - D(M(images), T) per image (B,), D = MaskCLIP's token-wise similarity of the
    segmenter's soft mask and the caption. Gradients flow to `images` through both frozen nets."""
    m, mv = reconstruction_mask_tokens(images, segmenter, maskclip)
    return 1.0 - pair_similarity(m, mv, text_tokens, text_valid)


def semantic_contrastive_loss(images: torch.Tensor, segmenter: nn.Module, maskclip: nn.Module,
                              text_tokens: torch.Tensor, text_valid: torch.Tensor) -> torch.Tensor:
    """Eq. 10 as the paper describes it: MaskCLIP's symmetric cross entropy (eq. 6-8) of the
    images' predicted masks against every caption of the batch (and, under several
    processes, of the global batch), at MaskCLIP's own temperature. A scalar. Unlike 1 - D,
    an image is rewarded only for matching its own caption better than the others, so a
    generic layout of the garment category earns nothing."""
    m, mv = reconstruction_mask_tokens(images, segmenter, maskclip)
    scale = maskclip.logit_scale.detach().clamp(max=math.log(100.0))
    return tokenwise_contrastive_loss(m, mv, text_tokens, text_valid, scale)["loss"]


def semantic_term(kind: str, images, segmenter, maskclip, text_tokens, text_valid) -> torch.Tensor:
    """The semantic loss named by a config (`contrastive` or `similarity`), as a scalar."""
    if kind == "contrastive":
        return semantic_contrastive_loss(images, segmenter, maskclip, text_tokens, text_valid)
    if kind == "similarity":
        return semantic_loss(images, segmenter, maskclip, text_tokens, text_valid).mean()
    raise UserError("loss.semantic must be 'contrastive' or 'similarity'")
