"""log_likelihood through the PF-ODE against the mixture's exact log-density; Hutchinson unbiasedness."""

import math

import pytest
import torch

from diffusion_lm.core import VESchedule, VPSchedule, bits_per_dim, log_likelihood


@pytest.mark.parametrize("schedule", [VPSchedule.linear(), VPSchedule.cosine(), VESchedule(0.01, 10.0)],
                         ids=["linear", "cosine", "ve"])
def test_exact_divergence_matches_the_exact_density(skewed, schedule):
    x0 = skewed.sample(16, torch.Generator().manual_seed(0))
    t_eps = 1e-5
    logp = log_likelihood(
        skewed.model(schedule, "eps"), x0, schedule, t_eps=t_eps,
        prior_log_prob=lambda x1: skewed.log_prob(x1, 1.0, schedule),
    )
    exact = skewed.log_prob(x0, t_eps, schedule)
    assert logp.shape == (16,)
    assert (logp - exact).abs().max() < 1e-3, (logp - exact)


def test_default_gaussian_prior_is_close_when_the_path_ends_in_noise(skewed):
    schedule = VPSchedule.cosine()  # alpha_1 ~ 2e-4
    x0 = skewed.sample(8, torch.Generator().manual_seed(1))
    logp = log_likelihood(skewed.model(schedule, "x0"), x0, schedule, prediction="x0")
    assert (logp - skewed.log_prob(x0)).abs().max() < 1e-2


def test_hutchinson_is_unbiased_within_its_standard_error(skewed):
    schedule = VPSchedule.linear()
    point = skewed.sample(1, torch.Generator().manual_seed(2))
    x0 = point.expand(256, -1).contiguous()
    prior = lambda x1: skewed.log_prob(x1, 1.0, schedule)
    model = skewed.model(schedule, "eps")
    exact = float(log_likelihood(model, point, schedule, prior_log_prob=prior)[0])
    for noise in ("rademacher", "gaussian"):
        est = log_likelihood(model, x0, schedule, divergence="hutchinson", hutchinson_noise=noise,
                             generator=torch.Generator().manual_seed(3), prior_log_prob=prior)
        se = float(est.std()) / math.sqrt(len(est))
        assert float(est.std()) > 1e-3, "the probes must vary"
        assert abs(float(est.mean()) - exact) < 3 * se + 1e-3, (float(est.mean()), exact, se)


def test_bits_per_dim_closed_forms():
    # a uniform density on [-1, 1]^d quantised to 256 levels is exactly 8 bits per dimension
    d = 64
    logp = torch.full((3,), -d * math.log(2.0))
    torch.testing.assert_close(bits_per_dim(logp, d, data_width=2.0, bins=256), torch.full((3,), 8.0))
    # a standard normal at its mode: 0.5 log2(2 pi) bits per dimension
    torch.testing.assert_close(bits_per_dim(torch.tensor([-0.5 * d * math.log(2 * math.pi)]), d),
                               torch.tensor([0.5 * math.log2(2 * math.pi)]))
    with pytest.raises(ValueError, match="both data_width and bins"):
        bits_per_dim(logp, d, bins=256)
