"""Consistency distillation: the boundary condition, the loss against a hand-rolled Heun teacher step, the sampler."""

import pytest
import torch

from diffusion_lm.core import VPSchedule
from diffusion_lm.toy.consistency import (
    ConsistencyFunction,
    consistency_distillation_loss,
    consistency_sample,
    distillation_grid,
)
from diffusion_lm.toy.mlp import ToyMLP

from .toy_helpers import one_thread  # noqa: F401

SCHEDULE = VPSchedule.linear()


def _student(seed=0, t_min=2e-3):
    torch.manual_seed(seed)
    return ConsistencyFunction(ToyMLP(hidden=32, layers=1), SCHEDULE, t_min=t_min, sigma_data=1.5)


def test_boundary_condition_holds_exactly():
    f = _student()
    x = torch.randn(64, 2, dtype=torch.float64)
    torch.testing.assert_close(f(x, torch.full((64,), 2e-3, dtype=torch.float64)), x, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="t >= t_min"):
        f(x, torch.full((64,), 1e-3, dtype=torch.float64))


def test_skip_and_out_coefficients_follow_edm():
    f = _student()
    t = torch.tensor([2e-3, 0.3, 1.0], dtype=torch.float64)
    skip, out, alpha = f.coefficients(t)
    s = SCHEDULE.sigma(t) / SCHEDULE.alpha(t)
    s_min = float(SCHEDULE.sigma(2e-3) / SCHEDULE.alpha(2e-3))
    torch.testing.assert_close(skip * alpha / float(SCHEDULE.alpha(2e-3)), 2.25 / ((s - s_min) ** 2 + 2.25))
    torch.testing.assert_close(out, 1.5 * (s - s_min) / torch.sqrt(2.25 + s**2))
    assert float(out[0]) == 0.0 and float(skip[0]) == 1.0


def _heun_step(mixture, x, t, s):
    """(44)-(47) on the PF-ODE (31) with the mixture's exact score, written out here."""
    def velocity(y, tau):
        tt = torch.full((len(y),), tau, dtype=torch.float64)
        f, g2 = float(SCHEDULE.drift_coef(tau)), float(SCHEDULE.diffusion_sq(tau))
        return f * y - 0.5 * g2 * mixture.score(y, tt, SCHEDULE)

    v = velocity(x, t)
    x_euler = x + (s - t) * v
    return x + (s - t) / 2 * (v + velocity(x_euler, s))


def test_loss_matches_the_definition_with_an_exact_teacher(ring):
    student, target = _student(0), _student(1)
    times = distillation_grid(SCHEDULE, 6, 2e-3)
    assert float(times[0]) == 2e-3 and float(times[-1]) == 1.0 and torch.all(times[1:] > times[:-1])
    x0 = ring.sample(40, torch.Generator().manual_seed(2))
    loss = consistency_distillation_loss(student, target, ring.model(SCHEDULE, "eps"), x0, times,
                                         generator=torch.Generator().manual_seed(3))
    # the same draws by hand: interval index, then noise
    gen = torch.Generator().manual_seed(3)
    n = torch.randint(0, 6, (40,), generator=gen)
    eps = torch.randn(40, 2, generator=gen, dtype=torch.float64)
    expected = []
    for i in range(40):
        hi, lo = float(times[n[i] + 1]), float(times[n[i]])
        x_hi = float(SCHEDULE.alpha(hi)) * x0[i : i + 1] + float(SCHEDULE.sigma(hi)) * eps[i : i + 1]
        x_lo = _heun_step(ring, x_hi, hi, lo)
        with torch.no_grad():
            anchor = target(x_lo, torch.tensor([lo], dtype=torch.float64))
        expected.append((student(x_hi, torch.tensor([hi], dtype=torch.float64)) - anchor).pow(2).mean())
    torch.testing.assert_close(loss, torch.stack(expected).mean(), rtol=1e-6, atol=1e-9)
    loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in target.parameters())


def test_multistep_sampling_renoises_with_the_forward_kernel():
    f = _student()
    x_T = torch.randn(8, 2, dtype=torch.float64)
    one = consistency_sample(f, x_T)
    torch.testing.assert_close(one, f(x_T, torch.ones(8, dtype=torch.float64)))
    two = consistency_sample(f, x_T, (1.0, 0.3), torch.Generator().manual_seed(4))
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    renoised = float(SCHEDULE.alpha(0.3)) * one + float(SCHEDULE.sigma(0.3)) * z  # (7)
    torch.testing.assert_close(two, f(renoised, torch.full((8,), 0.3, dtype=torch.float64)))
    with pytest.raises(ValueError, match="times must decrease"):
        consistency_sample(f, x_T, (0.3, 1.0))


def test_bad_arguments_are_named(ring):
    with pytest.raises(ValueError, match="t_min"):
        ConsistencyFunction(ToyMLP(), SCHEDULE, t_min=0.0)
    student = _student()
    x0 = ring.sample(4)
    with pytest.raises(ValueError, match="unknown solver"):
        consistency_distillation_loss(student, student, ring.model(SCHEDULE), x0, distillation_grid(SCHEDULE, 4, 2e-3),
                                      solver="rk4")
    with pytest.raises(ValueError, match="start at the student's t_min"):
        consistency_distillation_loss(student, student, ring.model(SCHEDULE), x0, distillation_grid(SCHEDULE, 4, 1e-2))


def test_grouped_intervals_stay_uniform(ring):
    times = distillation_grid(SCHEDULE, 10, 2e-3)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, t):
            seen.append(t.detach().clone())
            return x

    f = ConsistencyFunction(Recorder(), SCHEDULE, t_min=2e-3)
    x0 = ring.sample(20, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(6)
    counts = torch.zeros(11)
    for _ in range(300):
        seen.clear()
        consistency_distillation_loss(f, f, ring.model(SCHEDULE), x0, times, solver="ddim", groups=3, generator=gen)
        t_hi = seen[-1]  # the student's call at t_{n+1}
        idx = (t_hi[:, None] - times[None]).abs().argmin(1)
        assert len(idx.unique()) <= 3
        counts += torch.bincount(idx, minlength=11).float()
    assert counts[0] == 0 and (counts[1:] / counts.sum() - 0.1).abs().max() < 0.03, counts
