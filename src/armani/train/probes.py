"""Probes of what a loss term does to training: its share of the gradient.

A term can be in the objective and still teach nothing; its gradient says how much it
moves the weights next to the rest of the objective. `grad_share` compares the gradients
of one term and of the rest over the same parameters: `share` = |g_term| / (|g_term| +
|g_rest|) (0: the term moves nothing, 0.5: as much as everything else together) and
`cos`, the cosine between the two (near 0: the term pulls in a direction of its own).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


def probe_due(step: int, probe_every: int, term_every: int) -> bool:
    """Whether to probe a term that runs every `term_every` steps at this step: on the first
    step it runs at or after each multiple of `probe_every` (0: never), when gradients flow."""
    return bool(probe_every) and step % probe_every < term_every and torch.is_grad_enabled()


def _flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float()
                      for g, p in zip(grads, params)])


def grad_share(term: torch.Tensor, rest: torch.Tensor, params: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """`term` and `rest` are weighted scalars whose sum is (part of) the loss; the graph is kept
    for the loop's own backward pass."""
    params = [p for p in params if p.requires_grad]
    a, b = _flat_grad(term, params), _flat_grad(rest, params)
    na, nb = a.norm(), b.norm()
    return {"share": (na / (na + nb).clamp(min=1e-12)).detach(),
            "cos": (a @ b / (na * nb).clamp(min=1e-12)).detach()}
