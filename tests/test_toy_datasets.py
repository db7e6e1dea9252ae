"""2D toy data: the quadrature mixtures are the samplers' exact densities."""

import math

import pytest
import torch

from diffusion_lm.toy import sliced_wasserstein
from diffusion_lm.toy.datasets import TOY_DATASETS, curve_mixture, gauss_legendre, toy_distribution

from .toy_helpers import one_thread  # noqa: F401


def _brute_force_log_density(x, curves, std, nodes=40_000):
    """log int_0^1 N(x; c(u), std^2 I) du by the midpoint rule on a fine grid (curves given as formulas here)."""
    u = (torch.arange(nodes, dtype=torch.float64) + 0.5) / nodes
    out = []
    for curve in curves:
        c = curve(u)  # (nodes, 2)
        sq = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        out.append(torch.logsumexp(-sq / (2 * std**2), 1) - math.log(nodes) - math.log(2 * math.pi * std**2))
    return torch.logsumexp(torch.stack(out), 0) - math.log(len(curves))


def _swiss(u):
    a = 1.5 * math.pi * (1 + 2 * u)
    return torch.stack([a * torch.cos(a), a * torch.sin(a)], 1) / 5


def _moon_up(u):
    return torch.stack([2 * torch.cos(math.pi * u) - 1, 2 * torch.sin(math.pi * u) - 0.5], 1)


def _moon_down(u):
    return torch.stack([1 - 2 * torch.cos(math.pi * u), 0.5 - 2 * torch.sin(math.pi * u)], 1)


@pytest.mark.parametrize("name, curves", [("swissroll", [_swiss]), ("moons", [_moon_up, _moon_down])])
def test_curve_densities_match_brute_force_integration(name, curves):
    data = toy_distribution(name)
    x = data.sample(60, torch.Generator().manual_seed(0))
    x = torch.cat([x, 1.5 * torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)])
    exact = _brute_force_log_density(x, curves, 0.1)
    torch.testing.assert_close(data.log_prob(x), exact, rtol=1e-6, atol=1e-6)


def test_gauss_legendre_integrates_polynomials_exactly():
    nodes, weights = gauss_legendre(8)
    for k in range(16):  # exact up to degree 2 * order - 1
        assert abs(float((weights * nodes**k).sum()) - (1 - (-1) ** (k + 1)) / (k + 1)) < 1e-13


def test_quadrature_converges_fast():
    x = toy_distribution("swissroll").sample(200, torch.Generator().manual_seed(2))
    curve = lambda u: _swiss(u)
    fine = curve_mixture([curve], 0.1, panels=512).log_prob(x)
    assert (curve_mixture([curve], 0.1, panels=128).log_prob(x) - fine).abs().max() < 1e-9
    assert (curve_mixture([curve], 0.1, panels=32).log_prob(x) - fine).abs().max() > 1e-5  # not trivially flat


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_densities_integrate_to_one(name):
    data = toy_distribution(name)
    # midpoint rule on cells of side h = 0.1 = std (error ~exp(-2 pi^2 std^2 / h^2) ~ 3e-9), whose
    # edges fall on the checkerboard's
    n, lim = 90, 4.5
    h = 2 * lim / n
    axis = -lim + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    total = float(data.log_prob(grid).exp().sum() * h * h)
    assert abs(total - 1) < 1e-4, total


@pytest.mark.parametrize("name", ["ring", "swissroll", "moons"])
def test_mixture_and_sampler_are_one_distribution(name):
    data = toy_distribution(name)
    gen = torch.Generator().manual_seed(3)
    a, b, c = data.sample(3000, gen), data.mixture.sample(3000, gen), data.sample(3000, gen)
    floor = sliced_wasserstein(a, c, generator=torch.Generator().manual_seed(4))
    assert sliced_wasserstein(a, b, generator=torch.Generator().manual_seed(4)) < 2 * floor
    # the same cross-entropy from both sample sets (a mean of log p over each)
    la, lb = data.log_prob(a), data.log_prob(b)
    se = math.sqrt(float(la.var() + lb.var()) / 3000)
    assert abs(float(la.mean() - lb.mean())) < 4 * se


def test_checkerboard_samples_lie_on_black_squares():
    data = toy_distribution("checkerboard")
    assert torch.isfinite(data.log_prob(data.sample(2000, torch.Generator().manual_seed(5)))).all()
    assert data.mixture is None


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="valid choices are: ring, swissroll, moons, checkerboard"):
        toy_distribution("spiral")
