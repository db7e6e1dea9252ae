"""Schedules against their closed forms and finite differences; the inverse log-SNR; edge cases."""

import math

import pytest
import torch

from diffusion_lm.core import FlowSchedule, VESchedule, VPSchedule, schedule_from_config
from diffusion_lm.core.schedules import LOG_SNR_LIMIT

from .helpers import all_schedules

T = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)


def test_linear_closed_form():
    s = VPSchedule.linear(0.1, 20.0)
    log_alpha = -0.1 * T / 2 - 19.9 * T**2 / 4
    torch.testing.assert_close(s.alpha(T), log_alpha.exp(), rtol=1e-14, atol=0)
    torch.testing.assert_close(s.drift_coef(T), -(0.1 + 19.9 * T) / 2, rtol=1e-14, atol=0)
    torch.testing.assert_close(s.diffusion_sq(T), 0.1 + 19.9 * T, rtol=1e-14, atol=0)


def test_cosine_closed_form_below_the_cap():
    s = VPSchedule.cosine(0.008)
    t = T[T < s.t_cap]
    f = lambda u: torch.cos(math.pi / 2 * (u + 0.008) / 1.008)
    torch.testing.assert_close(s.alpha(t), f(t) / f(torch.zeros(1, dtype=torch.float64)), rtol=1e-13, atol=0)
    assert 0.999 < s.t_cap < 1.0


def test_sqrt_closed_form():
    s = VPSchedule.sqrt(1e-4)
    t = T[T < s.t_cap]
    torch.testing.assert_close(s.alpha(t) ** 2, 1 - torch.sqrt(t + 1e-4), rtol=1e-13, atol=0)


def test_from_betas_matches_the_chain_at_grid_points():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    s = VPSchedule.from_betas(betas)
    alphabar = torch.cumprod(1 - betas, 0)
    k = torch.tensor([1, 10, 250, 500, 999, 1000])
    torch.testing.assert_close(s.alpha(k.double() / 1000) ** 2, alphabar[k - 1], rtol=1e-12, atol=0)
    # one step: 1 - beta_k = exp(-int beta(s) ds) over ((k-1)/N, k/N]
    mid = (k.double() - 0.5) / 1000
    torch.testing.assert_close(torch.exp(-s.diffusion_sq(mid) / 1000), 1 - betas[k - 1], rtol=1e-12, atol=0)


def test_ve_and_flow_closed_forms():
    ve = VESchedule(0.01, 10.0)
    torch.testing.assert_close(ve.sigma(T), 0.01 * 1000.0**T, rtol=1e-13, atol=0)
    torch.testing.assert_close(ve.alpha(T), torch.ones_like(T))
    fl = FlowSchedule()
    torch.testing.assert_close(fl.alpha(T), 1 - T)
    torch.testing.assert_close(fl.sigma(T), T)


@pytest.mark.parametrize("s", all_schedules())
def test_vp_schedules_preserve_variance(s):
    if isinstance(s, VPSchedule):
        torch.testing.assert_close(s.alpha(T) ** 2 + s.sigma(T) ** 2, torch.ones_like(T), rtol=0, atol=1e-14)


@pytest.mark.parametrize("s", all_schedules())
def test_drift_and_diffusion_match_finite_differences(s):
    """(1): f = d log alpha / dt and g^2 = d sigma^2/dt - 2 f sigma^2, against central differences."""
    t = T[(T < 0.95)]
    if isinstance(s, VPSchedule) and s.profile.name == "discrete":
        t = (torch.arange(20, 900, 40, dtype=torch.float64) + 0.5) / 1000  # inside the linear pieces
    h = 1e-6
    f_fd = (torch.log(s.alpha(t + h)) - torch.log(s.alpha(t - h))) / (2 * h)
    var_dot = (s.sigma(t + h) ** 2 - s.sigma(t - h) ** 2) / (2 * h)
    torch.testing.assert_close(s.drift_coef(t), f_fd, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.diffusion_sq(t), var_dot - 2 * f_fd * s.sigma(t) ** 2, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.sigma_dot(t), (s.sigma(t + h) - s.sigma(t - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.alpha_dot(t), (s.alpha(t + h) - s.alpha(t - h)) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("s", all_schedules())
def test_log_snr_definition_and_exact_inverse(s):
    t = torch.cat([torch.tensor([0.0, 1e-6, 1e-3]), T, torch.tensor([0.999, 0.99999, 1.0])]).to(torch.float64)
    lam = s.log_snr(t)
    inside = lam.abs() < LOG_SNR_LIMIT
    torch.testing.assert_close(lam[inside], torch.log(s.alpha(t) / s.sigma(t))[inside], rtol=1e-12, atol=1e-12)
    assert torch.all(lam[1:] <= lam[:-1]), "log-SNR must decrease in t"
    # exact inverse: t -> lambda -> t, wherever lambda is not clipped (and within 1e-12 where it is)
    back = s.t_from_log_snr(lam)
    torch.testing.assert_close(back[inside], t[inside], rtol=0, atol=1e-11)
    assert torch.all((back - t).abs()[~inside] < 1e-12)
    # lambda -> t -> lambda over the working range (beyond |lambda| = 10, float64 t near 0 or 1 is the limit)
    grid = torch.linspace(max(float(lam.min()), -10.0), min(float(lam.max()), 10.0), 101, dtype=torch.float64)
    torch.testing.assert_close(s.log_snr(s.t_from_log_snr(grid)), grid, rtol=0, atol=1e-9)


@pytest.mark.parametrize("s", all_schedules())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_finite_everywhere_including_endpoints_and_half_precision(s, dtype):
    t = torch.tensor([0.0, 1e-4, 0.5, 0.9999, 1.0]).to(dtype)
    for name in ("alpha", "sigma", "log_snr", "drift_coef", "diffusion_sq", "alpha_dot", "sigma_dot"):
        out = getattr(s, name)(t)
        assert torch.isfinite(out).all(), f"{name} not finite for {dtype}: {out}"
        assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert torch.isfinite(s.t_from_log_snr(torch.tensor([-1e9, 0.0, 1e9]).to(dtype))).all()


def test_capped_rate_is_continuous_and_alpha_stays_positive():
    for s in (VPSchedule.cosine(), VPSchedule.sqrt()):
        eps = 1e-9
        b = s.diffusion_sq(torch.tensor([s.t_cap - eps, s.t_cap + eps], dtype=torch.float64))
        torch.testing.assert_close(b[0], b[1], rtol=1e-4, atol=0)
        assert float(s.alpha(1.0)) > 0 and float(s.log_snr(1.0)) < -5


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_time_outside_unit_interval_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        VPSchedule.linear().alpha(torch.tensor([0.5, bad]))


@pytest.mark.parametrize("s", all_schedules())
def test_config_round_trip(s):
    rebuilt = schedule_from_config(s.config())
    torch.testing.assert_close(rebuilt.alpha(T), s.alpha(T), rtol=0, atol=0)
    torch.testing.assert_close(rebuilt.sigma(T), s.sigma(T), rtol=0, atol=0)


def test_bad_schedule_parameters():
    with pytest.raises(ValueError, match="beta_min"):
        VPSchedule.linear(beta_min=-1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESchedule(1.0, 0.5)
    with pytest.raises(ValueError, match="each in \\(0, 1\\)"):
        VPSchedule.from_betas([0.1, 1.0])
    with pytest.raises(ValueError, match="unknown schedule type"):
        schedule_from_config({"type": "banana"})
