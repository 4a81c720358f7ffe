"""Stage 2 (section 3.4, eq. 12-13): one autoregressive Transformer that predicts the image
tokens from any mix of control signals.

The sequence is fixed-length, one segment per modality:

    [text: text_len][SEP][sketch: sketch_len][SEP][partial: image_len][SEP][image: image_len]

Each modality has its own embedding table with one extra id, EMPTY (`*_empty`): an absent
condition is a segment of EMPTY tokens, so every task of the paper (text, text+sketch,
text+partial, sketch only, partial only, none) is the same sequence shape and the
all-EMPTY prefix is the unconditional model classifier-free guidance needs. Partial-image
tokens are image codes at kept cells and EMPTY elsewhere; they share the image embedding.
Every position adds a modality embedding and an absolute position embedding.

Attention is causal over the whole sequence, so the condition prefix is encoded once and
cached (`KVCache`): sampling then costs one token's forward per step.

Text tokens (`text_encoder`): "learned" embeds caption ids with a table learned from
scratch; "maskclip" is the paper's "Transformer-based encoder": the frozen MaskCLIP text
encoder (its weights copied in when training starts and saved with the model) gives each
caption token its feature, and a learned linear map takes it to the model's width. The
prompt then reaches stage 2 through the same word vectors that stage 1 fused into the codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import KVCache, TransformerBlock
from .maskclip import MaskCLIPConfig, TextEncoder


@dataclass(frozen=True)
class TransformerConfig:
    text_vocab: int = 2048          # caption tokenizer size (MaskCLIP's tokenizer)
    text_len: int = 64
    sketch_codes: int = 256         # sketch tokenizer codebook
    sketch_len: int = 64
    image_codes: int = 512          # stage-1 codebook
    image_len: int = 64
    width: int = 256
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    text_encoder: str = "learned"   # or "maskclip": the frozen MaskCLIP text encoder's token features
    # The MaskCLIP text encoder's shape (text_encoder "maskclip"; copied from MaskCLIP's config).
    clip_text_width: int = 0
    clip_text_layers: int = 0
    clip_text_heads: int = 1
    clip_embed_dim: int = 0
    text_eos: int = -1              # the caption tokenizer's end-of-text id (captions end at its first)
    # Spatially aligned conditions: the input that predicts image token i also gets the
    # embedding of the sketch token over cell i and of the partial token at cell i (`aligned`),
    # besides the conditions' place in the sequence. Off: the paper's sequence alone.
    aligned: bool = False
    # With `aligned`, the sketch may leave the sequence: its tokens then reach the model only
    # through the aligned inputs, and the sequence is sketch_len + 1 positions shorter.
    sketch_in_sequence: bool = True

    @property
    def clip_text_config(self) -> MaskCLIPConfig:
        return MaskCLIPConfig(vocab_size=self.text_vocab, max_text_len=self.text_len, text_width=self.clip_text_width,
                              text_layers=self.clip_text_layers, text_heads=self.clip_text_heads,
                              embed_dim=self.clip_embed_dim)

    @property
    def text_empty(self) -> int:
        return self.text_vocab

    @property
    def sketch_empty(self) -> int:
        return self.sketch_codes

    @property
    def image_empty(self) -> int:
        return self.image_codes

    @property
    def prefix_len(self) -> int:
        sketch = self.sketch_len + 1 if self.sketch_in_sequence else 0
        return self.text_len + 1 + sketch + self.image_len + 1

    @property
    def seq_len(self) -> int:
        """Positions the model ever sees: the prefix and all image tokens but the last."""
        return self.prefix_len + self.image_len - 1


TEXT, SKETCH, PARTIAL, IMAGE = range(4)


class CrossModalTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.text_encoder not in ("learned", "maskclip"):
            raise ValueError("text_encoder must be 'learned' or 'maskclip'")
        self.cfg = cfg
        # Check every call's token ids against the vocabularies. The check reads the ids' range
        # on the host (a device sync on a GPU): training turns it off and checks its token
        # folder once instead.
        self.check_ids = True
        w = cfg.width
        if cfg.text_encoder == "learned":
            self.text_emb = nn.Embedding(cfg.text_vocab + 1, w)
        else:
            if cfg.clip_embed_dim <= 0 or cfg.text_eos < 0:
                raise ValueError("text_encoder 'maskclip' needs the MaskCLIP text encoder's shape and the EOS id")
            self.clip_text = TextEncoder(cfg.clip_text_config).requires_grad_(False)
            self.text_in = nn.Linear(cfg.clip_embed_dim, w)
            self.text_empty_emb = nn.Parameter(torch.zeros(w))
        if cfg.sketch_in_sequence:
            self.sketch_emb = nn.Embedding(cfg.sketch_codes + 1, w)
        self.image_emb = nn.Embedding(cfg.image_codes + 1, w)   # image and partial tokens
        if not cfg.sketch_in_sequence and not cfg.aligned:
            raise ValueError("sketch_in_sequence false needs aligned: the sketch would reach the model nowhere")
        if cfg.aligned:
            g, gs = round(cfg.image_len ** 0.5), round(cfg.sketch_len ** 0.5)
            if g * g != cfg.image_len or gs * gs != cfg.sketch_len or gs == 0:
                raise ValueError("aligned conditions need square image and sketch token grids")
            self.sketch_at = nn.Embedding(cfg.sketch_codes + 1, w)
            self.partial_at = nn.Embedding(cfg.image_codes + 1, w)
            r = torch.arange(cfg.image_len)
            # image cell i -> the sketch cell over it
            self.register_buffer("sketch_cell", (r // g * gs // g) * gs + (r % g * gs // g), persistent=False)
        self.modality = nn.Parameter(torch.zeros(4, w))
        self.sep = nn.Parameter(torch.zeros(3, w))
        self.pos = nn.Parameter(torch.zeros(cfg.seq_len, w))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([TransformerBlock(w, cfg.heads, cfg.mlp_ratio, cfg.dropout)
                                     for _ in range(cfg.layers)])
        self.ln = nn.LayerNorm(w)
        self.head = nn.Linear(w, cfg.image_codes, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith("attn.out.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / (2 * cfg.layers) ** 0.5)
        extra = (self.text_empty_emb,) if cfg.text_encoder == "maskclip" else ()
        for p in (self.modality, self.sep, self.pos) + extra:
            nn.init.normal_(p, std=0.02)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.text_encoder == "maskclip":
            self.clip_text.eval()  # frozen: never in training mode
        return self

    @staticmethod
    def _init(m: nn.Module) -> None:  # MaskCLIP's text encoder, initialised here too, gets MaskCLIP's weights
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    # -- inputs ------------------------------------------------------------------------
    def empty_conditions(self, batch: int, device=None) -> dict[str, torch.Tensor]:
        """Every condition absent: the unconditional prefix."""
        c = self.cfg
        full = lambda n, v: torch.full((batch, n), v, dtype=torch.long, device=device)  # noqa: E731
        return {"text": full(c.text_len, c.text_empty), "sketch": full(c.sketch_len, c.sketch_empty),
                "partial": full(c.image_len, c.image_empty)}

    def _check(self, name: str, ids: torch.Tensor, n: int, vocab: int) -> None:
        if ids.dim() != 2 or ids.shape[1] != n:
            raise ValueError(f"{name} tokens must be (batch, {n}), got {tuple(ids.shape)}")
        if self.check_ids and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > vocab):
            raise ValueError(f"{name} token ids must lie in [0, {vocab}] ({vocab} is EMPTY)")

    def embed_prefix(self, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor) -> torch.Tensor:
        """Token ids (B, text_len), (B, sketch_len), (B, image_len) -> (B, prefix_len, width)."""
        c = self.cfg
        self._check("text", text, c.text_len, c.text_vocab)
        self._check("sketch", sketch, c.sketch_len, c.sketch_codes)
        self._check("partial", partial, c.image_len, c.image_codes)
        b = text.shape[0]
        sep = self.sep[:, None].expand(3, b, -1).unsqueeze(2)  # (3, B, 1, W)
        sk = [self.sketch_emb(sketch) + self.modality[SKETCH], sep[1]] if c.sketch_in_sequence else []
        x = torch.cat([self.embed_text(text) + self.modality[TEXT], sep[0], *sk,
                       self.image_emb(partial) + self.modality[PARTIAL], sep[2]], dim=1)
        return x + self.pos[:c.prefix_len]

    def aligned_inputs(self, sketch: torch.Tensor, partial: torch.Tensor) -> torch.Tensor | None:
        """(B, image_len, width): what the input predicting image token i adds for cell i (the
        sketch token over it, the partial token at it); None when the model has no `aligned`."""
        if not self.cfg.aligned:
            return None
        return self.sketch_at(sketch[:, self.sketch_cell]) + self.partial_at(partial)

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """Caption ids (B, text_len), EMPTY where absent -> (B, text_len, width)."""
        c = self.cfg
        if c.text_encoder == "learned":
            return self.text_emb(text)
        empty = text == c.text_empty
        ids = text.masked_fill(empty, 0)
        eos = ids == c.text_eos  # a caption ends at its first EOS (padding may repeat it)
        lengths = torch.where(eos.any(1), eos.int().argmax(1) + 1, c.text_len)
        with torch.no_grad():
            feats, _, _ = self.clip_text(ids, lengths)  # (B, L, D), L2-normalised as MaskCLIP fuses them
        x = self.text_in(feats.to(self.text_in.weight.dtype))
        return torch.where(empty[..., None], self.text_empty_emb.to(x.dtype), x)

    def embed_image(self, image: torch.Tensor, start: int) -> torch.Tensor:
        """Image tokens (B, T), or one-hot rows over the codes (B, T, image_codes) such as
        straight-through Gumbel samples, placed at image positions start .. start+T-1 (0-based)."""
        p0 = self.cfg.prefix_len + start
        if image.is_floating_point():
            e = image @ self.image_emb.weight[:self.cfg.image_codes]
        else:
            e = self.image_emb(image)
        return e + self.modality[IMAGE] + self.pos[p0:p0 + image.shape[1]]

    def _run(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = self.drop(x)
        for i, blk in enumerate(self.blocks):
            x = blk(x, causal=True, cache=cache, layer=i)
        if cache is not None:
            cache.length += x.shape[1]
        return x

    # -- training ----------------------------------------------------------------------
    def forward(self, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor,
                image: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, image_len, image_codes); row i predicts image token i.
        `image` is token ids (B, image_len) or one-hot rows (B, image_len, image_codes)."""
        c = self.cfg
        if image.is_floating_point():
            if image.shape[1:] != (c.image_len, c.image_codes):
                raise ValueError(f"one-hot image tokens must be (batch, {c.image_len}, {c.image_codes})")
        else:
            self._check("image", image, c.image_len, c.image_codes - 1)
        x = torch.cat([self.embed_prefix(text, sketch, partial), self.embed_image(image[:, :-1], 0)], dim=1)
        al = self.aligned_inputs(sketch, partial)
        if al is not None:  # position prefix_len - 1 + i predicts image token i
            x = torch.cat([x[:, :c.prefix_len - 1], x[:, c.prefix_len - 1:] + al.to(x.dtype)], dim=1)
        h = self._run(x)[:, c.prefix_len - 1:]
        return self.head(self.ln(h))

    # -- sampling ----------------------------------------------------------------------
    def new_cache(self, batch: int, device=None, dtype=None) -> KVCache:
        c = self.cfg
        p = next(self.parameters())
        return KVCache(c.layers, batch, c.heads, c.seq_len, c.width // c.heads, device or p.device, dtype or p.dtype)

    def prefill(self, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor,
                cache: KVCache) -> torch.Tensor:
        """Encode the conditions into `cache`; returns the logits of the first image token."""
        x = self.embed_prefix(text, sketch, partial)
        cache.aligned = self.aligned_inputs(sketch, partial)
        if cache.aligned is not None:
            x = torch.cat([x[:, :-1], x[:, -1:] + cache.aligned[:, :1].to(x.dtype)], dim=1)
        h = self._run(x, cache)[:, -1:]
        return self.head(self.ln(h))[:, 0]

    def step(self, token: torch.Tensor, index: int, cache: KVCache) -> torch.Tensor:
        """Feed image token number `index` (B,); returns the logits of token index+1."""
        x = self.embed_image(token[:, None], index)
        if cache.aligned is not None and index + 1 < self.cfg.image_len:
            x = x + cache.aligned[:, index + 1:index + 2].to(x.dtype)
        h = self._run(x, cache)
        return self.head(self.ln(h))[:, 0]

    def step_static(self, token: torch.Tensor, index: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """`step` with fixed shapes and no host reads: `index` is a (1,) long tensor on the
        model's device, and every layer attends over the whole preallocated cache with the
        unfilled slots masked. The same logits as `step` up to rounding; the cache's
        `length` is not advanced. This is the decode step `inference.sampling` captures in a
        CUDA graph."""
        slot = index + self.cfg.prefix_len
        visible = (torch.arange(cache.k.shape[3], device=token.device) <= slot).view(1, 1, 1, -1)
        x = self.image_emb(token[:, None]) + self.modality[IMAGE] + self.pos.index_select(0, slot)
        if cache.aligned is not None:  # the last step's (index image_len - 1) logits are never used
            nxt = (index + 1).clamp(max=self.cfg.image_len - 1)
            x = x + cache.aligned.index_select(1, nxt).to(x.dtype)
        for i, blk in enumerate(self.blocks):
            x = blk.decode_static(x, cache, i, slot, visible)
        return self.head(self.ln(x))[:, 0]

    def logits_at(self, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor,
                  image_so_far: torch.Tensor) -> torch.Tensor:
        """Without a cache: the whole context recomputed, logits of the next image token."""
        x = self.embed_prefix(text, sketch, partial)
        if image_so_far.shape[1]:
            x = torch.cat([x, self.embed_image(image_so_far, 0)], dim=1)
        al = self.aligned_inputs(sketch, partial)
        if al is not None:
            n = image_so_far.shape[1] + 1  # the inputs predicting image tokens 0 .. n-1
            x = torch.cat([x[:, :-n], x[:, -n:] + al[:, :n].to(x.dtype)], dim=1)
        return self.head(self.ln(self._run(x)[:, -1]))
