"""Conversions between eps, x0, v, score and velocity: closed forms, round trips, the PF-ODE identity."""

import itertools

import pytest
import torch

from diffusion_lm.core import PREDICTIONS, VPSchedule, convert

from .helpers import all_schedules

B = 64


def _batch(gen):
    x = torch.randn(B, 3, 4, generator=gen, dtype=torch.float64)
    pred = torch.randn(B, 3, 4, generator=gen, dtype=torch.float64)
    t = torch.rand(B, generator=gen, dtype=torch.float64) * 0.96 + 0.02
    return x, pred, t


@pytest.mark.parametrize("s", all_schedules())
@pytest.mark.parametrize("source,target", list(itertools.permutations(PREDICTIONS, 2)))
def test_round_trip_is_exact(s, source, target):
    x, pred, t = _batch(torch.Generator().manual_seed(0))
    back = convert(convert(pred, x, t, s, source, target), x, t, s, target, source)
    torch.testing.assert_close(back, pred, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("s", all_schedules())
def test_closed_forms_from_a_known_pair(s):
    """Build x_t from known (x0, eps) (7) and check each kind against its textbook formula."""
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(B, 5, generator=gen, dtype=torch.float64)
    eps = torch.randn(B, 5, generator=gen, dtype=torch.float64)
    t = torch.rand(B, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    a, sg = s.alpha(t)[:, None], s.sigma(t)[:, None]
    x = a * x0 + sg * eps
    torch.testing.assert_close(convert(eps, x, t, s, "eps", "x0"), x0)
    torch.testing.assert_close(convert(x0, x, t, s, "x0", "eps"), eps)
    torch.testing.assert_close(convert(eps, x, t, s, "eps", "score"), -eps / sg)  # (35)
    torch.testing.assert_close(convert(x0, x, t, s, "x0", "score"), (a * x0 - x) / sg**2)  # (134)
    velocity = s.alpha_dot(t)[:, None] * x0 + s.sigma_dot(t)[:, None] * eps
    torch.testing.assert_close(convert(eps, x, t, s, "eps", "velocity"), velocity)
    # the flow-matching velocity is the PF-ODE drift (31): f x - 1/2 g^2 score
    pf_ode = s.drift_coef(t)[:, None] * x + 0.5 * s.diffusion_sq(t)[:, None] * eps / sg
    torch.testing.assert_close(convert(x0, x, t, s, "x0", "velocity"), pf_ode, rtol=1e-9, atol=1e-9)
    if isinstance(s, VPSchedule):
        torch.testing.assert_close(convert(eps, x, t, s, "eps", "v"), a * eps - sg * x0)  # Salimans & Ho


def test_scalar_time_and_dtype_are_respected():
    s = VPSchedule.cosine()
    x = torch.randn(4, 8)
    out = convert(x, x, 0.3, s, "eps", "v")
    assert out.dtype == torch.float32 and out.shape == x.shape


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("s", all_schedules())
def test_half_precision_inputs_stay_finite(s, dtype):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(8, 6, generator=gen).to(dtype)
    pred = torch.randn(8, 6, generator=gen).to(dtype)
    t = torch.tensor([0.0, 1e-3, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]).to(dtype)
    for source, target in itertools.permutations(PREDICTIONS, 2):
        # at the endpoints, only where the source determines (x0, eps): x0 says nothing of eps at
        # sigma = 0, eps nothing of x0 at alpha = 0
        a, sg = s.alpha(t), s.sigma(t)
        ok = {"x0": sg > 1e-3, "eps": a > 1e-3, "score": a > 1e-3}.get(source, torch.ones_like(a, dtype=torch.bool))
        if "score" in (source, target) or "velocity" in (source, target):
            ok = ok & (sg > 0.05)  # these scale like 1/sigma^2 (or sigma' = inf at sigma = 0 for VP)
        out = convert(pred[ok], x[ok], t[ok], s, source, target)
        assert out.dtype == dtype and torch.isfinite(out).all(), (source, target, out)


def test_bad_arguments():
    s = VPSchedule.linear()
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown source prediction 'noise'.*eps, x0, v, score, velocity"):
        convert(x, x, 0.5, s, "noise", "x0")
    with pytest.raises(ValueError, match="must match"):
        convert(torch.zeros(2, 4), x, 0.5, s)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        convert(x, x, 2.0, s)
    with pytest.raises(ValueError, match="shape \\(B,\\)"):
        convert(x, x, torch.full((3,), 0.5), s)
