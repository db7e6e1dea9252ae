"""Losses against closed-form integrals; estimators agree; importance sampling reduces variance."""

import math

import pytest
import torch
from scipy.integrate import quad

from diffusion_lm.core import PREDICTIONS, FlowSchedule, VPSchedule, dsm_loss, flow_matching_loss, sample_time

SCHEDULE = VPSchedule.linear()
T_EPS = 1e-3


def _zero_eps_model(x, t):
    return torch.zeros_like(x)


def _integral(weighting):
    lam = lambda t: float(SCHEDULE.log_snr(t))
    if weighting == "none":
        return 1 - T_EPS
    if weighting == "likelihood":
        return 2 * (lam(T_EPS) - lam(1.0))  # int g^2 / sigma^2 dt = -2 int dlambda
    return quad(lambda t: math.exp(2 * lam(t)), T_EPS, 1.0, limit=200)[0]


@pytest.mark.parametrize("weighting", ["none", "snr", "likelihood"])
@pytest.mark.parametrize("t_sampling", ["uniform", "importance"])
def test_zero_model_loss_is_the_weight_integral(weighting, t_sampling):
    """With eps_hat = 0, E||eps||^2 per entry is 1, so the loss estimates int_{t_eps}^1 w(t) dt."""
    x0 = torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    losses = dsm_loss(_zero_eps_model, x0, SCHEDULE, weighting=weighting, t_sampling=t_sampling,
                      t_eps=T_EPS, generator=torch.Generator().manual_seed(1), reduction="none")
    se = float(losses.std()) / math.sqrt(len(losses))
    assert abs(float(losses.mean()) - _integral(weighting)) < 4 * se + 1e-9


def test_importance_sampling_makes_the_likelihood_loss_low_variance():
    x0 = torch.randn(20_000, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    std = {s: float(dsm_loss(_zero_eps_model, x0, SCHEDULE, weighting="likelihood", t_sampling=s,
                             generator=torch.Generator().manual_seed(1), reduction="none").std())
           for s in ("uniform", "importance")}
    assert std["importance"] < std["uniform"] / 3, std


def test_importance_times_follow_the_likelihood_weight():
    t, pi = sample_time(200_000, SCHEDULE, t_sampling="importance", t_eps=T_EPS,
                        generator=torch.Generator().manual_seed(0))
    assert torch.all((t >= T_EPS) & (t <= 1))
    # histogram against pi(t) = (g^2 / sigma^2) / Z on a few bins
    edges = torch.tensor([T_EPS, 0.01, 0.1, 0.5, 1.0], dtype=torch.float64)
    z = _integral("likelihood")
    lam = lambda u: float(SCHEDULE.log_snr(u))
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        expected = 2 * (lam(lo) - lam(hi)) / z
        assert abs(float(((t >= lo) & (t < hi)).double().mean()) - expected) < 5e-3
    torch.testing.assert_close(pi, SCHEDULE.diffusion_sq(t) / SCHEDULE.sigma(t) ** 2 / z)


@pytest.mark.parametrize("weighting", ["none", "snr", "likelihood"])
def test_loss_is_the_same_objective_in_every_parameterisation(skewed, weighting):
    """The loss is defined in noise space, so the same exact denoiser scores the same in every kind."""
    x0 = skewed.sample(512, torch.Generator().manual_seed(0))
    values = [
        float(dsm_loss(skewed.model(SCHEDULE, p), x0, SCHEDULE, prediction=p, weighting=weighting,
                       generator=torch.Generator().manual_seed(5)))
        for p in PREDICTIONS
    ]
    for v in values[1:]:
        assert v == pytest.approx(values[0], rel=1e-8)


def test_exact_denoiser_minimises_the_loss(skewed):
    x0 = skewed.sample(4096, torch.Generator().manual_seed(0))
    exact = skewed.model(SCHEDULE, "x0")
    base = float(dsm_loss(exact, x0, SCHEDULE, prediction="x0", weighting="snr",
                          generator=torch.Generator().manual_seed(1)))
    for shift in (0.05, -0.05):
        worse = lambda x, t, s=shift: exact(x, t) + s
        assert float(dsm_loss(worse, x0, SCHEDULE, prediction="x0", weighting="snr",
                              generator=torch.Generator().manual_seed(1))) > base


def test_flow_matching_closed_form_for_the_zero_model():
    """Under FlowSchedule the target is eps - x0, so the zero model's loss is E[eps^2] + E[x0^2] per entry."""
    x0 = 2.0 * torch.randn(100_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = float(flow_matching_loss(_zero_eps_model, x0, FlowSchedule(), generator=torch.Generator().manual_seed(1)))
    assert loss == pytest.approx(1.0 + 4.0, rel=2e-2)


def test_flow_matching_is_minimised_by_the_exact_velocity(ring):
    s = FlowSchedule()
    x0 = ring.sample(4096, torch.Generator().manual_seed(0))
    exact = ring.model(s, "velocity")
    base = float(flow_matching_loss(exact, x0, s, generator=torch.Generator().manual_seed(1)))
    worse = float(flow_matching_loss(lambda x, t: 1.05 * exact(x, t), x0, s,
                                     generator=torch.Generator().manual_seed(1)))
    assert worse > base


def test_bad_loss_arguments():
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="unknown weighting 'elbo'.*none, snr, likelihood"):
        dsm_loss(_zero_eps_model, x0, SCHEDULE, weighting="elbo")
    with pytest.raises(ValueError, match="unknown t_sampling"):
        dsm_loss(_zero_eps_model, x0, SCHEDULE, t_sampling="stratified")
    with pytest.raises(ValueError, match="must match"):
        dsm_loss(lambda x, t: x[:, :1], x0, SCHEDULE)
