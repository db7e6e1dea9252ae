"""2D toy distributions: a sampler each and, where one exists in closed form, the exact density."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .mixture import GaussianMixture


@dataclass(frozen=True)
class ToyDistribution:
    """A named 2D distribution: ``sample(n, generator) -> (n, 2)`` float64, ``log_prob`` if known."""

    name: str
    sample: Callable[[int, torch.Generator | None], Tensor]
    log_prob: Callable[[Tensor], Tensor] | None = None


def eight_gaussians() -> GaussianMixture:
    """FFJORD's "8gaussians": 8 components on a circle of radius 4, std 0.5, all divided by sqrt(2)."""
    return GaussianMixture.ring(8, radius=4 / math.sqrt(2), std=0.5 / math.sqrt(2))


def _swissroll(n: int, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    angle = 1.5 * math.pi * (1 + 2 * u)
    x = torch.stack([angle * torch.cos(angle), angle * torch.sin(angle)], 1) / 5.0
    return x + 0.1 * torch.randn(n, 2, generator=generator, dtype=torch.float64)


def _moons(n: int, generator: torch.Generator | None) -> Tensor:
    upper = torch.rand(n, generator=generator) < 0.5
    angle = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], 1)
    x = torch.where(upper[:, None], x, lower)
    x = (x - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 2.0
    return x + 0.1 * torch.randn(n, 2, generator=generator, dtype=torch.float64)


# checkerboard: uniform on the 8 "black" squares (column + row even) of side 1 in [-2, 2]^2
def _checkerboard(n: int, generator: torch.Generator | None) -> Tensor:
    cell = torch.randint(0, 8, (n,), generator=generator)
    row = cell // 2
    col = 2 * (cell % 2) + (row % 2)
    offset = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return torch.stack([col, row], 1).to(torch.float64) + offset - 2.0


def _checkerboard_log_prob(x: Tensor) -> Tensor:
    inside = (x.abs() < 2).all(1)
    cells = torch.floor(x + 2.0)
    black = (cells[:, 0] + cells[:, 1]) % 2 == 0  # the squares _checkerboard draws from
    return torch.where(inside & black, torch.full_like(x[:, 0], -math.log(8.0)), torch.full_like(x[:, 0], -math.inf))


def toy_distribution(name: str) -> ToyDistribution:
    """One of ``ring`` (8gaussians), ``swissroll``, ``moons``, ``checkerboard``."""
    if name == "ring":
        mixture = eight_gaussians()
        return ToyDistribution("ring", lambda n, g=None: mixture.sample(n, g), mixture.log_prob)
    table = {
        "swissroll": ToyDistribution("swissroll", _swissroll),
        "moons": ToyDistribution("moons", _moons),
        "checkerboard": ToyDistribution("checkerboard", _checkerboard, _checkerboard_log_prob),
    }
    if name not in table:
        raise ValueError(f"unknown toy dataset {name!r}; valid choices are: ring, {', '.join(table)}.")
    return table[name]


TOY_DATASETS = ("ring", "swissroll", "moons", "checkerboard")
