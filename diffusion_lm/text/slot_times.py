"""(A1) Position-dependent noise (AR-Diffusion, Wu et al. 2023): each response slot has its own time.

A global progress s runs from 1 (all noise) to 0 (all clean); slot j of a response of n tokens is at

    t_j(s) = clip((1 + w) s - w (1 - j / n), t_min, 1)                                           (A1)

so earlier slots are cleaner than later ones and a later slot is written knowing the earlier ones, while every
slot is still denoised in parallel at every step. w = 0 is the plain model (every slot at s); each slot travels
from 1 to t_min while s falls by 1 / (1 + w). Training draws s where the plain model draws t; sampling steps s
over its grid and moves every slot from t_j(s_i) to t_j(s_{i+1}) (``core.ddim_per_slot``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def slot_fractions(lengths: Tensor | None, batch: int, slots: int, device) -> Tensor:
    """j / n per slot (B, N), at most 1: n each response's length, or the N slots where the length is not known. The
    slots past the end (pad, L2) follow the schedule of a slot at the end, so every slot is clean at s = 0."""
    j = torch.arange(slots, device=device, dtype=torch.float64)[None].expand(batch, -1)
    if lengths is None:
        return j / slots
    return (j / lengths.to(device=device, dtype=torch.float64).clamp(min=1)[:, None]).clamp(max=1.0)


def slot_times(s: Tensor, fractions: Tensor, skew: float, t_min: float) -> Tensor:
    """(A1) t_j(s), float64, for progress s (B,) and slot fractions j / n (B, N): (B, N)."""
    t = (1 + skew) * s.to(torch.float64)[:, None] - skew * (1 - fractions)
    return t.clamp(min=t_min, max=1.0)


def slot_grid(grid: Tensor, fractions: Tensor, skew: float, t_min: float) -> Tensor:
    """(A1) every slot's time at each point of a decreasing progress grid (K + 1,): (K + 1, B, N)."""
    return torch.stack([slot_times(s.expand(fractions.shape[0]), fractions, skew, t_min) for s in grid.double()])
