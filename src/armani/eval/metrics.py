"""Sample-quality statistics on feature arrays: Fréchet distance (FID), kernel inception
distance (KID), inception score (IS), CLIPScore, and bootstrap intervals: over prompts
(`bootstrap_ci`), and over stage-2 seeds and prompt pairs at once (`two_way_bootstrap`).

Pure numpy: the networks that make the features live in `eval.foreign` (Inception, CLIP) and
`eval.generation` (the project's own MaskCLIP score). Everything here is float64.
"""
from __future__ import annotations

import numpy as np


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D)."""
    x = np.asarray(feats, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least two feature vectors (N, D), got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues from
    rounding are clipped to zero)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    tr((C1 C2)^(1/2)) is computed as tr((S C2 S)^(1/2)) with S = C1^(1/2): S C2 S is symmetric
    and similar to C1 C2, so it has the same (non-negative) eigenvalues, and a symmetric
    eigendecomposition is stable where a general matrix square root is not.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise ValueError("the two distributions have features of different sizes")
    s = _sym_sqrt(cov1)
    m = s @ cov2 @ s
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two sets of features (N, D)."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance: the unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3, averaged over random subsets -> (mean, std over subsets).
    The subset size is capped at the smaller set's size."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError("the two sets have features of different sizes")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least two samples per set")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx, kyy, kxy = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        vals.append(off - 2 * kxy.mean())
    v = np.asarray(vals)
    return float(v.mean()), float(v.std())


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts -> (mean, std over parts).
    `probs` (N, C) are class probabilities (rows sum to one)."""
    p = np.asarray(probs, np.float64)
    splits = max(1, min(splits, len(p)))
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(py, 1e-12, None)))).sum(1)
        scores.append(np.exp(kl.mean()))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std())


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray, weight: float = 100.0) -> np.ndarray:
    """Per-sample CLIPScore: weight * max(cos(image, text), 0), the clamp per sample (as in
    Hessel et al. 2021 and torchmetrics, whose weight is 100; the paper does not say which).
    Average the returned (N,) array for the reported figure."""
    a = np.asarray(image_emb, np.float64)
    b = np.asarray(text_emb, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return weight * np.clip((a * b).sum(1), 0, None)


def bootstrap_ci(values, groups=None, n: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`. With `groups` (one id per value,
    e.g. the prompt), whole groups are resampled, so several samples of one prompt count as
    one draw."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(v), size=(n, len(v)))
        means = v[idx].mean(1)
    else:
        _, inv = np.unique(np.asarray(groups), return_inverse=True)
        k = inv.max() + 1
        sums, counts = np.bincount(inv, v, k), np.bincount(inv, minlength=k).astype(np.float64)
        pick = rng.integers(0, k, size=(n, k))
        means = sums[pick].sum(1) / counts[pick].sum(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def two_way_bootstrap(blocks: list[np.ndarray], n: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap draws of the mean over blocks of each block's mean, resampling rows (seeds)
    once for all blocks and columns (prompt pairs) within each block. `blocks`: arrays
    (S, K_j) with the same S. A paired difference is the draws of the blocks' differences.
    Returns (n,) draws."""
    rng = np.random.default_rng(seed)
    s = blocks[0].shape[0]
    rows = np.stack([np.bincount(rng.integers(0, s, s), minlength=s) for _ in range(n)]).astype(np.float64)
    total = np.zeros(n)
    for b in blocks:
        k = b.shape[1]
        cols = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n)]).astype(np.float64)
        total += np.einsum("ns,sk,nk->n", rows, np.asarray(b, np.float64), cols) / (s * k)
    return total / len(blocks)


def interval(draws: np.ndarray, level: float = 0.95) -> list[float]:
    """The central `level` interval of bootstrap draws, [low, high]."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]
