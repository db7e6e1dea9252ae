"""The exact Gaussian-mixture model against autograd, Tweedie's formula, quadrature and sampling."""

import math

import pytest
import torch

from diffusion_lm.core import VPSchedule

from .helpers import all_schedules


@pytest.mark.parametrize("s", all_schedules())
def test_score_is_the_gradient_of_the_exact_log_density(skewed, s):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    (grad,) = torch.autograd.grad(skewed.log_prob(x, t, s).sum(), x)
    torch.testing.assert_close(skewed.score(x.detach(), t, s), grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("s", all_schedules())
def test_x0_satisfies_tweedie(skewed, s):
    """E[x0 | x_t] = (x_t + sigma^2 grad log p_t) / alpha, with the gradient from autograd."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    (grad,) = torch.autograd.grad(skewed.log_prob(x, t, s).sum(), x)
    a, sg = s.alpha(t)[:, None], s.sigma(t)[:, None]
    torch.testing.assert_close(skewed.x0(x.detach(), t, s), (x.detach() + sg**2 * grad) / a, rtol=1e-9, atol=1e-9)


def test_x0_matches_monte_carlo_posterior_mean(skewed):
    """E[x0 | x_t] by self-normalised importance sampling from the prior, independent of the formula."""
    s = VPSchedule.linear()
    gen = torch.Generator().manual_seed(2)
    x0s = skewed.sample(400_000, gen)
    t = 0.4
    a, sg = float(s.alpha(t)), float(s.sigma(t))
    x_t = torch.tensor([[0.3, 0.2, -0.1]], dtype=torch.float64)
    logw = -0.5 * ((x_t - a * x0s) ** 2).sum(1) / sg**2
    w = torch.softmax(logw, 0)
    mc = (w[:, None] * x0s).sum(0)
    torch.testing.assert_close(skewed.x0(x_t, torch.tensor([t]), s)[0], mc, rtol=0, atol=5e-3)


def test_density_integrates_to_one(ring):
    s = VPSchedule.linear()
    for t in (0.0, 0.3):
        g = torch.linspace(-5, 5, 1001, dtype=torch.float64)
        xx, yy = torch.meshgrid(g, g, indexing="ij")
        pts = torch.stack([xx.flatten(), yy.flatten()], 1)
        dens = ring.log_prob(pts, torch.full((len(pts),), t), s).exp()
        assert abs(float(dens.sum()) * (10 / 1000) ** 2 - 1) < 1e-4


def test_samples_follow_the_mixture(skewed):
    x, labels = skewed.sample(200_000, torch.Generator().manual_seed(3), return_labels=True)
    freq = torch.bincount(labels, minlength=3).double() / len(labels)
    torch.testing.assert_close(freq, skewed.log_weights.exp(), rtol=0, atol=5e-3)
    for k in range(3):
        torch.testing.assert_close(x[labels == k].mean(0), skewed.means[k], rtol=0, atol=1e-2)
        torch.testing.assert_close(x[labels == k].std(0), skewed.vars[k].sqrt(), rtol=2e-2, atol=0)


def test_posterior_is_bayes_rule(skewed):
    s = VPSchedule.linear()
    x = torch.randn(10, 3, dtype=torch.float64)
    t = torch.full((10,), 0.3)
    comps = torch.stack([skewed.component(k).log_prob(x, t, s) for k in range(3)], 1)
    expected = torch.softmax(comps + skewed.log_weights, 1)
    torch.testing.assert_close(skewed.posterior(x, t, s), expected)
    assert math.isclose(float(skewed.posterior(x, t, s).sum(1).mean()), 1.0)
