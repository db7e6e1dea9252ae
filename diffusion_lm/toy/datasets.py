"""2D toy distributions: a sampler each and, where one exists, the exact density.

The ring is a Gaussian mixture. The Swiss roll and the moons are a curve ``c(u)``, u uniform, plus
isotropic Gaussian noise, so their density is the 1-D integral ``int N(x; c(u), s^2 I) du``; composite
Gauss-Legendre quadrature turns it into a Gaussian mixture that matches it to ~1e-12 in log-density
(``tests/test_toy_datasets.py`` measures the convergence). For these three, ``mixture`` is therefore
the exact data distribution with closed-form marginals, scores and densities at every t of any
schedule. The checkerboard has an exact density (uniform on its squares) but no mixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .mixture import GaussianMixture

TOY_DATASETS = ("ring", "swissroll", "moons", "checkerboard")


@dataclass(frozen=True)
class ToyDistribution:
    """A named 2D distribution: ``sample(n, generator) -> (n, 2)`` float64, ``log_prob`` if known.

    ``mixture`` is the same distribution as an exact Gaussian mixture (exact diffused marginals)
    where one exists.
    """

    name: str
    sample: Callable[[int, torch.Generator | None], Tensor]
    log_prob: Callable[[Tensor], Tensor] | None = None
    mixture: GaussianMixture | None = None


def eight_gaussians() -> GaussianMixture:
    """FFJORD's "8gaussians": 8 components on a circle of radius 4, std 0.5, all divided by sqrt(2)."""
    return GaussianMixture.ring(8, radius=4 / math.sqrt(2), std=0.5 / math.sqrt(2))


CURVE_NOISE = 0.1  # std of the Gaussian noise around the Swiss roll and the moons


def _swissroll_curve(u: Tensor) -> Tensor:
    angle = 1.5 * math.pi * (1 + 2 * u)
    return torch.stack([angle * torch.cos(angle), angle * torch.sin(angle)], 1) / 5.0


def _swissroll(n: int, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return _swissroll_curve(u) + CURVE_NOISE * torch.randn(n, 2, generator=generator, dtype=torch.float64)


_MOONS_SHIFT = (0.5, 0.25)


def _upper_moon(u: Tensor) -> Tensor:
    angle = math.pi * u
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return (upper - torch.tensor(_MOONS_SHIFT, dtype=torch.float64)) * 2.0


def _lower_moon(u: Tensor) -> Tensor:
    angle = math.pi * u
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], 1)
    return (lower - torch.tensor(_MOONS_SHIFT, dtype=torch.float64)) * 2.0


def _moons(n: int, generator: torch.Generator | None) -> Tensor:
    upper = torch.rand(n, generator=generator) < 0.5
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.where(upper[:, None], _upper_moon(u), _lower_moon(u))
    return x + CURVE_NOISE * torch.randn(n, 2, generator=generator, dtype=torch.float64)


def gauss_legendre(order: int) -> tuple[Tensor, Tensor]:
    """Nodes and weights of the ``order``-point Gauss-Legendre rule on [-1, 1] (Golub-Welsch)."""
    k = torch.arange(1, order, dtype=torch.float64)
    off = k / torch.sqrt(4 * k * k - 1)
    nodes, vectors = torch.linalg.eigh(torch.diag(off, 1) + torch.diag(off, -1))
    return nodes, 2 * vectors[0] ** 2


def curve_mixture(
    curves: list[Callable[[Tensor], Tensor]], std: float, panels: int = 128, order: int = 8
) -> GaussianMixture:
    """The density of ``c(u) + std * noise``, u ~ U[0, 1], c drawn uniformly from ``curves``, as a mixture.

    ``int_0^1 N(x; c(u), std^2 I) du`` by composite Gauss-Legendre quadrature: ``panels`` equal panels
    of ``order`` nodes; the node weights become the mixture weights. The error falls like
    (panel length / std)^(2 order): 128 x 8 nodes reach ~1e-12 in log-density on the Swiss roll.
    """
    nodes, weights = gauss_legendre(order)
    left = torch.arange(panels, dtype=torch.float64) / panels
    u = (left[:, None] + (nodes[None] + 1) / (2 * panels)).reshape(-1)  # (panels * order,)
    w = (weights[None] / (2 * panels)).expand(panels, -1).reshape(-1)
    means = torch.cat([curve(u) for curve in curves])
    return GaussianMixture(means, std, w.repeat(len(curves)) / len(curves))


def swissroll_mixture() -> GaussianMixture:
    """The Swiss roll of ``toy_distribution('swissroll')`` as an exact mixture (1024 components)."""
    return curve_mixture([_swissroll_curve], CURVE_NOISE, panels=128)


def moons_mixture() -> GaussianMixture:
    """The two moons of ``toy_distribution('moons')`` as an exact mixture (2 x 512 components)."""
    return curve_mixture([_upper_moon, _lower_moon], CURVE_NOISE, panels=64)


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
        return ToyDistribution("ring", lambda n, g=None: mixture.sample(n, g), mixture.log_prob, mixture)
    if name == "swissroll":
        mixture = swissroll_mixture()
        return ToyDistribution("swissroll", _swissroll, mixture.log_prob, mixture)
    if name == "moons":
        mixture = moons_mixture()
        return ToyDistribution("moons", _moons, mixture.log_prob, mixture)
    if name == "checkerboard":
        return ToyDistribution("checkerboard", _checkerboard, _checkerboard_log_prob)
    raise ValueError(f"unknown toy dataset {name!r}; valid choices are: {', '.join(TOY_DATASETS)}.")

