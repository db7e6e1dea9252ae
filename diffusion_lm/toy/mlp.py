"""A small MLP denoiser for low-dimensional data, conditioned on t by a sinusoidal embedding."""

from __future__ import annotations

from torch import Tensor, nn

from ..common.layers import timestep_embedding


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
