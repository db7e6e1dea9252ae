"""A small MLP denoiser for low-dimensional data, conditioned on t by a sinusoidal embedding."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of t in [0, 1] (scaled by 1000, as for integer timesteps): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


class ToyMLP(nn.Module):
    """``model(x, t) -> prediction`` for x of shape (B, dim): residual SiLU MLP with a time embedding."""

    def __init__(self, dim: int = 2, hidden: int = 256, layers: int = 3, time_dim: int = 64):
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(layers))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.inp(x.float()) + self.time(timestep_embedding(t, self.time_dim))  # (B, hidden)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).to(x.dtype)
