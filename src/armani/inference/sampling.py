"""Sampling image tokens from the stage-2 Transformer (section 3.4).

`sample_tokens` draws every image token of a batch: temperature, top-k and top-p
filtering, classifier-free guidance and a seeded generator. With `use_cache=True` the
condition prefix is encoded once and each step runs one token through the network (a
key-value cache); `use_cache=False` recomputes the whole context at every step, as
taming-transformers' `sample` does, and exists as the reference the cache is checked and
benchmarked against.

Decoding with the cache (`decode`): "cache" feeds each token through the growing cache;
"static" runs `CrossModalTransformer.step_static`, the same step with fixed shapes (the
whole preallocated cache, unfilled slots masked, the position a device tensor); "graph"
captures that step once per batch in a CUDA graph and replays it for every token, so a
step costs one launch instead of a dozen per layer. "auto" is "graph" on CUDA and "cache"
elsewhere (on a CPU the masked full-length attention would only add work). Under autocast
the cache is kept in the autocast dtype, so attention reads it without a cast.

Partial images (`keep`): with "exact" (the default) the image tokens of the kept cells are the
partial image's own stage-1 tokens, forced at their steps (their pixels still depend on the
sampled cells, which the stage-1 decoder attends to); only the other cells are sampled, and the
Transformer still reads the partial condition. With "soft" every token is sampled and the partial image
is a condition only, as in the paper (eq. 9). A kept step still draws from the generator, so
both use the same random stream (their free cells still differ: each follows the tokens
before it).

Guidance: the conditional rows and as many unconditional rows (every condition EMPTY) run
in one batched forward; the logits used are u + s * (c - u), so s = 1 is plain
conditional sampling and s = 0 unconditional. The unconditional rows share one all-EMPTY
prefix: it is encoded once per batch and copied into their cache rows.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..models.transformer import CrossModalTransformer


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0        # 0: greedy (argmax)
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0           # classifier-free guidance scale; 1: off
    keep: str = "exact"             # partial image: "exact" forces the kept cells' tokens, "soft" conditions only

    def check(self) -> None:
        """UserError naming the first setting that is of the wrong type or out of range."""
        for name in ("temperature", "guidance", "top_p"):
            v = getattr(self, name)
            if v is None and name == "top_p":
                continue
            if not _real(v) or not math.isfinite(v):
                raise UserError(f"{name} must be a finite number, got {v!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or isinstance(self.top_k, bool)):
            raise UserError(f"top_k must be a whole number or null, got {self.top_k!r}")
        if self.temperature < 0:
            raise UserError("temperature must be >= 0")
        if self.top_k is not None and self.top_k < 1:
            raise UserError("top_k must be >= 1")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UserError("top_p must be in (0, 1]")
        if self.guidance < 0:
            raise UserError("guidance must be >= 0")
        if self.keep not in KEEP_MODES:
            raise UserError(f"keep must be one of {', '.join(KEEP_MODES)}, got {self.keep!r}")


KEEP_MODES = ("exact", "soft")


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


MAX_SEED = 2**64 - 1


def check_seed(seed) -> int:
    """A seed as an int in [0, 2**64), the range torch's generators take; UserError else."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"seed must be a whole number from 0 to 2**64 - 1, got {seed!r}")
    return int(seed)


def batch_seed(seed: int, start: int) -> int:
    """The seed of the batch that begins at image `start`: the seed itself for the first,
    then seed * 1_000_003 + start, wrapped into the generator's 64 bits."""
    return seed if start == 0 else (seed * 1_000_003 + start) % (MAX_SEED + 1)


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Logits (B, V) with everything outside the top k, and outside the smallest set whose
    probability reaches top_p (nucleus), set to -inf. The most likely token always stays."""
    out = logits
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[:, -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass strictly above each token
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def pick(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of logits (B, V)."""
    if cfg.temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / cfg.temperature, cfg.top_k, cfg.top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def sample_tokens(model: CrossModalTransformer, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor,
                  cfg: SamplingConfig = SamplingConfig(), generator: torch.Generator | None = None,
                  use_cache: bool = True, share_uncond: bool = True, decode: str = "auto") -> torch.Tensor:
    """Condition token ids (B, ...) -> image token ids (B, image_len). `share_uncond=False`
    encodes every unconditional row's prefix (the reference the shared one is checked and
    benchmarked against); `decode` picks how cached steps run (module docstring)."""
    cfg.check()
    decode = decode_mode(decode, text.device)
    b, n = text.shape[0], model.cfg.image_len
    guided = cfg.guidance != 1.0
    fixed = partial if cfg.keep == "exact" and bool((partial != model.cfg.image_empty).any()) else None
    forced = None if fixed is None else fixed != model.cfg.image_empty
    if guided:
        empty = model.empty_conditions(b, text.device)
        text = torch.cat([text, empty["text"]])
        sketch = torch.cat([sketch, empty["sketch"]])
        partial = torch.cat([partial, empty["partial"]])

    def combine(logits: torch.Tensor) -> torch.Tensor:
        if not guided:
            return logits
        cond, unc = logits.float().chunk(2)
        return unc + cfg.guidance * (cond - unc)

    def draw(logits: torch.Tensor, i: int) -> torch.Tensor:
        tok = pick(combine(logits), cfg, generator)
        return tok if forced is None else torch.where(forced[:, i], fixed[:, i], tok)

    out = torch.zeros(b, n, dtype=torch.long, device=text.device)
    if use_cache:
        dev = text.device
        dtype = torch.get_autocast_dtype(dev.type) if torch.is_autocast_enabled(dev.type) else None
        cache = model.new_cache(text.shape[0], dtype=dtype)
        logits = _prefill(model, text, sketch, partial, cache, b if guided and share_uncond else 0)
        step = (GraphedStep(model, cache) if decode == "graph" else
                _static_step(model, cache) if decode == "static" else
                lambda tok, i: model.step(tok, i, cache))
        for i in range(n):
            tok = draw(logits, i)
            out[:, i] = tok
            if i + 1 < n:
                logits = step(torch.cat([tok, tok]) if guided else tok, i)
    else:
        for i in range(n):
            so_far = torch.cat([out[:, :i], out[:, :i]]) if guided else out[:, :i]
            tok = draw(model.logits_at(text, sketch, partial, so_far), i)
            out[:, i] = tok
    return out


def _prefill(model: CrossModalTransformer, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor,
             cache, uncond_from: int) -> torch.Tensor:
    """`model.prefill` of every row into `cache`; rows from `uncond_from` on (when > 0) are
    the unconditional ones, all alike: their prefix is encoded once and copied."""
    if not uncond_from:
        return model.prefill(text, sketch, partial, cache)
    b, rows = uncond_from, text.shape[0] - uncond_from
    cond, one = cache.rows(0, b), cache.rows(b, b + 1)
    lc = model.prefill(text[:b], sketch[:b], partial[:b], cond)
    lu = model.prefill(text[b:b + 1], sketch[b:b + 1], partial[b:b + 1], one)
    cache.k[:, b + 1:] = cache.k[:, b:b + 1]
    cache.v[:, b + 1:] = cache.v[:, b:b + 1]
    cache.length = cond.length
    if cond.aligned is not None:
        cache.aligned = torch.cat([cond.aligned, one.aligned.expand(rows, -1, -1)])
    return torch.cat([lc, lu.expand(rows, -1)])


DECODE_MODES = ("auto", "cache", "static", "graph")


def decode_mode(decode: str, device: torch.device) -> str:
    """The decode mode `sample_tokens` runs for `decode` on `device` ("auto" resolved)."""
    if decode not in DECODE_MODES:
        raise UserError(f"decode must be one of {', '.join(DECODE_MODES)}, not {decode!r}")
    if decode == "auto":
        return "graph" if device.type == "cuda" else "cache"
    if decode == "graph" and device.type != "cuda":
        raise UserError("decode 'graph' captures a CUDA graph: it needs the model on a CUDA device")
    return decode


def _static_step(model: CrossModalTransformer, cache):
    index = torch.zeros(1, dtype=torch.long, device=cache.k.device)

    def step(tok: torch.Tensor, i: int) -> torch.Tensor:
        index.fill_(i)
        return model.step_static(tok, index, cache)
    return step


class GraphedStep:
    """`model.step_static` for one batch, captured in a CUDA graph: calling it copies the
    token into the graph's input, sets the position, replays, and returns the logits
    (a buffer the next call overwrites). Before capturing, the step runs twice on the
    cache's next slot (CUDA graphs need a warm-up); every real step writes its slot before
    reading it, and unfilled slots are masked, so those writes change nothing."""

    def __init__(self, model: CrossModalTransformer, cache):
        dev = cache.k.device
        self.token = torch.zeros(cache.k.shape[1], dtype=torch.long, device=dev)
        self.index = torch.zeros(1, dtype=torch.long, device=dev)
        # Autocast's weight-cast cache must be off while capturing (the casts become part of the graph).
        autocast = (torch.autocast(dev.type, dtype=torch.get_autocast_dtype(dev.type), cache_enabled=False)
                    if torch.is_autocast_enabled(dev.type) else nullcontext())
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side), autocast:  # warm-up off the main stream, as capture requires
            for _ in range(2):
                model.step_static(self.token, self.index, cache)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), autocast:
            self.logits = model.step_static(self.token, self.index, cache)

    def __call__(self, token: torch.Tensor, i: int) -> torch.Tensor:
        self.token.copy_(token)
        self.index.fill_(i)
        self.graph.replay()
        return self.logits
