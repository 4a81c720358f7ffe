"""Vector quantizer (eq. 1) with what keeps a codebook alive.

Codebook collapse (most codes never used) is the failure VQGAN users report most. Two
known remedies are built in:
- low-dimensional, L2-normalised lookup (Yu et al., "Vector-quantized image modeling with
  improved VQGAN"): encoder outputs are projected to a few dimensions and both they and
  the codes are normalised, so the nearest code is the one with the largest cosine;
- dead-code restart: a running average of how often each code is picked is kept, and
  codes that fall out of use are moved onto encoder outputs of the current batch.
Usage (share of codes picked) and perplexity of every batch are returned for logging.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, normalize: bool = True,
                 restart_every: int = 50, dead_threshold: float = 0.03, usage_decay: float = 0.99,
                 chunk: int = 4096):
        super().__init__()
        self.num_codes, self.dim, self.beta, self.normalize = num_codes, dim, beta, normalize
        self.restart_every, self.dead_threshold, self.usage_decay = restart_every, dead_threshold, usage_decay
        self.chunk = chunk
        self.embed = nn.Embedding(num_codes, dim)
        nn.init.uniform_(self.embed.weight, -1.0 / num_codes, 1.0 / num_codes)
        if normalize:
            nn.init.normal_(self.embed.weight)
        # Running mean of how many times each code is picked per batch, and a step counter.
        # It starts at zero: the first training batch restarts every code onto an encoder
        # output (a data-dependent initialisation), and codes never picked die quickly.
        self.register_buffer("usage", torch.zeros(num_codes))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def codes(self) -> torch.Tensor:
        w = self.embed.weight
        return F.normalize(w, dim=-1) if self.normalize else w

    def nearest(self, flat: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of `flat` (N, D). Distances come from one
        (chunk x K) matrix product at a time, never an (N x K x D) tensor."""
        c2 = codes.pow(2).sum(1)
        out = []
        for part in flat.split(self.chunk):
            d = c2[None, :] - 2 * part @ codes.t()  # |z|^2 is the same for every code
            out.append(d.argmin(1))
        return torch.cat(out)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z (B, D, H, W) -> (quantized (B, D, H, W) with straight-through gradients,
        indices (B, H, W), terms: codebook and commitment losses, usage, perplexity)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        if self.normalize:
            flat = F.normalize(flat, dim=-1)
        codes = self.codes().float()
        idx = self.nearest(flat.detach(), codes.detach())
        q = codes[idx]
        codebook = F.mse_loss(q, flat.detach())
        commit = F.mse_loss(flat, q.detach())
        q_st = flat + (q - flat).detach()
        counts = torch.bincount(idx, minlength=self.num_codes).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum())
        if self.training:
            self._track(counts, flat.detach())
        terms = {"codebook": codebook, "commit": self.beta * commit,
                 "usage": (counts > 0).float().mean().detach(), "perplexity": perplexity.detach()}
        out = q_st.view(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        return out, idx.view(b, h, w), terms

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Indices (B, H, W) -> quantized vectors (B, D, H, W)."""
        return self.codes()[idx].permute(0, 3, 1, 2)

    @torch.no_grad()
    def _track(self, counts: torch.Tensor, flat: torch.Tensor) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
            counts /= dist.get_world_size()
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        self.calls += 1
        if self.restart_every and (int(self.calls) == 1 or int(self.calls) % self.restart_every == 0):
            self.restart_dead(flat)

    @torch.no_grad()
    def restart_dead(self, candidates: torch.Tensor) -> torch.Tensor:
        """Move every code whose running usage is below `dead_threshold` onto a random row of
        `candidates` (N, D), encoder outputs of the current batch. Returns the restarted
        indices. Under DDP, rank 0 chooses and every rank receives the same codes."""
        dead = (self.usage < self.dead_threshold).nonzero().flatten()
        if dead.numel() == 0 or candidates.shape[0] == 0:
            return dead
        pick = torch.randint(0, candidates.shape[0], (dead.numel(),), device=candidates.device)
        new = candidates[pick].to(self.embed.weight.dtype)
        if not self.normalize:  # a little noise so two restarts on one vector can drift apart
            new = new + 1e-3 * new.std() * torch.randn_like(new)
        w = self.embed.weight.data.clone()
        w[dead] = new
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(w, 0)
        self.embed.weight.data.copy_(w)
        self.usage[dead] = 1.0  # a restarted code gets a grace period before it can be declared dead again
        return dead


def perplexity_of(counts: torch.Tensor) -> float:
    """exp(entropy) of a code histogram; the number of equally used codes it is worth."""
    p = counts.double() / counts.sum().clamp(min=1)
    return float(math.exp(-(p * torch.log(p.clamp(min=1e-12))).sum().item()))
