"""CLIP (Radford et al. 2021) for CLIPScore, laid out so that the parameter names match the
Hugging Face `CLIPModel` checkpoints (`model.safetensors` + `config.json`), which load into it
without conversion. Written here from the published architecture: a ViT image tower and a
causal text transformer, each pooled (class token / end-of-text token) and projected into
a shared space. Pure module: the loading lives in `armani.eval.foreign`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TowerConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    # image tower
    image_size: int = 224
    patch_size: int = 32
    num_channels: int = 3
    # text tower
    vocab_size: int = 49408
    max_position_embeddings: int = 77


def _act(name: str):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        return (lambda x: F.gelu(x)) if name == "gelu" else (lambda x: F.gelu(x, approximate="tanh"))
    raise ValueError(f"unsupported activation {name!r}")


class _Attention(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class _MLP(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)
        self.act = _act(c.hidden_act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.self_attn = _Attention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _MLP(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x, causal: bool):
        x = x + self.self_attn(self.layer_norm1(x), causal)
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x, causal: bool = False):
        for layer in self.layers:
            x = layer(x, causal)
        return x


class _VisionEmbeddings(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(c.hidden_size))
        self.patch_embedding = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, c.patch_size, bias=False)
        self.position_embedding = nn.Embedding((c.image_size // c.patch_size) ** 2 + 1, c.hidden_size)

    def forward(self, x):
        p = self.patch_embedding(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(p.shape[0], 1, -1)
        return torch.cat([cls, p], 1) + self.position_embedding.weight[None]


class VisionTower(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.embeddings = _VisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # (sic: the checkpoints' name)
        self.encoder = _Encoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        h = self.encoder(self.pre_layrnorm(self.embeddings(x)))
        return self.post_layernorm(h[:, 0])


class _TextEmbeddings(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embedding = nn.Embedding(c.max_position_embeddings, c.hidden_size)

    def forward(self, ids):
        return self.token_embedding(ids) + self.position_embedding.weight[: ids.shape[1]][None]


class TextTower(nn.Module):
    def __init__(self, c: TowerConfig):
        super().__init__()
        self.embeddings = _TextEmbeddings(c)
        self.encoder = _Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids: torch.Tensor, eot: torch.Tensor):
        """ids (B, L); eot (B,) the position of each caption's end-of-text token (the pooled one)."""
        h = self.final_layer_norm(self.encoder(self.embeddings(ids), causal=True))
        return h[torch.arange(ids.shape[0], device=ids.device), eot]


@dataclass
class CLIPConfig:
    vision: TowerConfig
    text: TowerConfig
    projection_dim: int = 512


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.vision_model = VisionTower(cfg.vision)
        self.text_model = TextTower(cfg.text)
        self.visual_projection = nn.Linear(cfg.vision.hidden_size, cfg.projection_dim, bias=False)
        self.text_projection = nn.Linear(cfg.text.hidden_size, cfg.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (B, 3, S, S) -> embeddings (B, projection_dim), not L2-normalised."""
        return self.visual_projection(self.vision_model(pixels))

    def encode_text(self, ids: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        return self.text_projection(self.text_model(ids, eot))
