"""Distances between sample sets."""

from __future__ import annotations

import torch
from torch import Tensor


def sliced_wasserstein(a: Tensor, b: Tensor, projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance between two sample sets (N, d) and (M, d).

    Both sets are projected on ``projections`` random unit directions; each 1-D W2 distance is
    computed between matched quantiles (on a common grid of ``min(N, M)`` levels), and the squared
    distances are averaged over directions before the square root.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two sample sets of shape (N, d) and (M, d), got {tuple(a.shape)} and {tuple(b.shape)}.")
    a, b = a.to(torch.float64), b.to(torch.float64)
    dirs = torch.randn(a.shape[1], projections, generator=generator, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = (a @ dirs).sort(0).values, (b @ dirs).sort(0).values
    n = min(len(pa), len(pb))
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    qa = pa[(levels * len(pa)).long().clamp(max=len(pa) - 1)]
    qb = pb[(levels * len(pb)).long().clamp(max=len(pb) - 1)]
    return float(((qa - qb) ** 2).mean().sqrt())
