"""MaskCLIP's losses: the token-wise contrastive loss of eq. 3-8 and the global CLIP loss
it is compared with. Both return named terms; the training loop sums `loss`."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

NEG = -1e4  # stands in for -inf in masked maxima (finite, so 0 * NEG never makes a NaN)


def token_similarity(m: torch.Tensor, mv: torch.Tensor, t: torch.Tensor, tv: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """All-pairs token-wise similarities (eq. 3-5).

    m (B, N, D), t (C, L, D) L2-normalised tokens; mv (B, N), tv (C, L) bool validity.
    Returns sim_M (B, C): for each mask token its best text token, averaged over the mask's
    valid tokens; and sim_T (B, C): for each text token its best mask token, averaged over
    the text's valid tokens. Invalid tokens never win a max nor enter a mean.
    """
    s = torch.einsum("bnd,cld->bcnl", m, t)  # (B, C, N, L)
    s_for_m = s.masked_fill(~tv[None, :, None, :], NEG).amax(dim=3)  # (B, C, N): best text token
    s_for_t = s.masked_fill(~mv[:, None, :, None], NEG).amax(dim=2)  # (B, C, L): best mask token
    wm = mv.float()[:, None, :]
    wt = tv.float()[None, :, :]
    sim_m = (s_for_m * wm).sum(-1) / wm.sum(-1).clamp(min=1)
    sim_t = (s_for_t * wt).sum(-1) / wt.sum(-1).clamp(min=1)
    # A pair where either side has no valid token has no similarity.
    both = (mv.any(1)[:, None] & tv.any(1)[None, :]).float()
    return sim_m * both, sim_t * both


def pair_similarity(m: torch.Tensor, mv: torch.Tensor, t: torch.Tensor, tv: torch.Tensor) -> torch.Tensor:
    """Token-wise similarity of matched pairs only, (B,): the mean of sim_M and sim_T.
    This is D in the semantic loss (eq. 10)."""
    s = torch.einsum("bnd,bld->bnl", m, t)
    best_t = s.masked_fill(~tv[:, None, :], NEG).amax(2)
    best_m = s.masked_fill(~mv[:, :, None], NEG).amax(1)
    sm = (best_t * mv).sum(1) / mv.sum(1).clamp(min=1)
    st = (best_m * tv).sum(1) / tv.sum(1).clamp(min=1)
    return 0.5 * (sm + st) * (mv.any(1) & tv.any(1)).float()


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


_GROUPS: dict = {}


def _gather_group():
    """A process group of its own for these gathers (one per default group), so that their
    backward-pass collectives never interleave with DDP's gradient all-reduces on the
    default group."""
    key = id(dist.group.WORLD)
    if key not in _GROUPS:
        _GROUPS[key] = dist.new_group(backend=dist.get_backend())
    return _GROUPS[key]


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` over every process along dim 0 (gradients flow back to each owner),
    so a batch split over processes has the negatives of the whole global batch."""
    rank, world = _world()
    if world == 1:
        return x
    group = _gather_group()
    if x.is_floating_point() and x.requires_grad:
        return _GatherWithGrad.apply(x, group, rank, world)
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts, 0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every process's gradient for the whole gathered
    batch (one all_reduce) and keeps this process's rows."""

    @staticmethod
    def forward(ctx, x, group, rank, world):
        ctx.group, ctx.rank, ctx.n = group, rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n], None, None, None


def tokenwise_contrastive_loss(m, mv, t, tv, logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eq. 6-8: symmetric cross entropy over sim_M (mask -> texts) and sim_T (text -> masks).

    Under several processes each one scores its own rows against the global batch, so the
    mean over processes (what DDP's gradient averaging computes) is the global-batch loss."""
    rank, world = _world()
    b = m.shape[0]
    scale = logit_scale.exp()
    target = torch.arange(b, device=m.device) + rank * b
    if world == 1:
        sim_m, sim_t = token_similarity(m, mv, t, tv)
        sim_t = sim_t.t()
    else:
        m_all, mv_all, t_all, tv_all = gather_batch(m), gather_batch(mv), gather_batch(t), gather_batch(tv)
        sim_m, _ = token_similarity(m, mv, t_all, tv_all)            # local masks vs every text
        _, sim_t = token_similarity(m_all, mv_all, t, tv)            # every mask vs local texts
        sim_t = sim_t.t()
    loss_m = F.cross_entropy(scale * sim_m, target)
    loss_t = F.cross_entropy(scale * sim_t, target)
    loss = 0.5 * (loss_m + loss_t)
    return {"loss": loss, "loss_mask": loss_m.detach(), "loss_text": loss_t.detach()}


def global_contrastive_loss(mp: torch.Tensor, tp: torch.Tensor, logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ordinary CLIP loss on pooled, L2-normalised embeddings mp (B, D), tp (B, D); global-batch
    negatives under several processes, as above."""
    rank, _ = _world()
    scale = logit_scale.exp()
    target = torch.arange(mp.shape[0], device=mp.device) + rank * mp.shape[0]
    loss_m = F.cross_entropy(scale * mp @ gather_batch(tp).t(), target)
    loss_t = F.cross_entropy(scale * tp @ gather_batch(mp).t(), target)
    return {"loss": 0.5 * (loss_m + loss_t), "loss_mask": loss_m.detach(), "loss_text": loss_t.detach()}
