"""Deterministic samplers converge to a tight reference PF-ODE solution at the order their theory promises."""

import functools
import math

import pytest
import torch

from diffusion_lm.core import PREDICTIONS, FlowSchedule, VESchedule, VPSchedule, make_grid, sample
from diffusion_lm.toy import GaussianMixture

from .helpers import reference_pf_ode, slope

LINEAR = VPSchedule.linear()


@functools.lru_cache(maxsize=None)
def _problem(schedule_name: str):
    from diffusion_lm.toy import GaussianMixture

    schedule = {"linear": LINEAR, "cosine": VPSchedule.cosine(), "ve": VESchedule(0.01, 10.0),
                "flow": FlowSchedule()}[schedule_name]
    mixture = GaussianMixture.ring(8, radius=2.0, std=0.1)
    x_start = torch.randn(48, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_start = x_start * float(schedule.sigma(1.0))
    t_start = 0.999 if schedule_name == "flow" else 1.0
    return schedule, mixture, x_start, t_start, reference_pf_ode(mixture, schedule, x_start, t_start)


def uniform_logsnr(schedule, steps, t_start=1.0, t_end=1e-3):
    """A grid exactly uniform in log-SNR between the endpoints: a fixed smooth map of a uniform grid,
    as order-of-convergence statements assume (the default grid adapts its window to ``steps``)."""
    lam = schedule.log_snr(torch.tensor([t_start, t_end], dtype=torch.float64))
    ts = schedule.t_from_log_snr(torch.linspace(float(lam[0]), float(lam[1]), steps + 1, dtype=torch.float64))
    ts[0], ts[-1] = t_start, t_end
    return ts


def _error(schedule_name, method, steps, **kw):
    schedule, mixture, x_start, t_start, ref = _problem(schedule_name)
    if kw.get("grid", "uniform") == "uniform":
        kw["grid"] = uniform_logsnr(schedule, steps, t_start)
    else:
        kw["steps"] = steps
    x = sample(mixture.model(schedule, "eps"), x_start, schedule, method=method, t_start=t_start, **kw)
    return float((x - ref).norm(dim=1).median())


CASES = [
    ("euler", {}, 1),
    ("ddim", {}, 1),
    ("dpm_solver", {"order": 1}, 1),
    ("heun", {}, 2),
    ("dpm_solver", {"order": 2}, 2),
    ("dpm_solver++", {"order": 2}, 2),
    ("dpm_solver", {"order": 3}, 3),
    ("dpm_solver++", {"order": 3}, 3),
    ("unipc", {"order": 2}, 2),
    ("unipc", {"order": 3}, 3),
]


@pytest.mark.parametrize("method,kw,order", CASES, ids=[f"{m}-{k.get('order', '')}" for m, k, _ in CASES])
def test_order_of_convergence(method, kw, order):
    steps = [40, 80, 160, 320]
    errors = [_error("linear", method, n, **kw) for n in steps]
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:])), errors
    assert abs(slope(steps, errors) - order) < 0.35, (errors, slope(steps, errors))


@pytest.mark.parametrize("schedule_name", ["cosine", "ve", "flow"])
@pytest.mark.parametrize("method,kw,order", [("heun", {}, 2), ("dpm_solver++", {"order": 3}, 3),
                                             ("unipc", {"order": 3}, 3)], ids=["heun", "dpm3M", "unipc3"])
def test_orders_hold_on_other_schedules(schedule_name, method, kw, order):
    steps = [80, 160, 320]
    errors = [_error(schedule_name, method, n, **kw) for n in steps]
    assert abs(slope(steps, errors) - order) < 0.4, errors


def test_rk45_matches_the_scipy_reference():
    assert _error("linear", "rk45", 10, rtol=1e-8, atol=1e-8) < 1e-6


def test_ddim_equals_dpm_solver_1():
    schedule, mixture, x_start, _, _ = _problem("linear")
    model = mixture.model(schedule, "eps")
    a = sample(model, x_start, schedule, method="ddim", steps=7)
    b = sample(model, x_start, schedule, method="dpm_solver", order=1, steps=7)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["euler", "heun", "ddim", "dpm_solver", "dpm_solver++", "unipc", "rk45"])
def test_every_parameterisation_gives_the_same_trajectory(method):
    schedule, mixture, x_start, _, _ = _problem("linear")
    outs = [sample(mixture.model(schedule, p), x_start, schedule, method=method, steps=12, prediction=p)
            for p in PREDICTIONS]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("grid", ["logsnr", "time", "karras"])
def test_every_grid_converges(grid):
    # (multistep solvers in lambda converge slowly on a time-uniform grid: its last steps jump far in lambda)
    errors = [_error("linear", "heun", n, grid=grid) for n in (25, 100, 400)]
    assert errors[1] < errors[0] / 8 and errors[2] < errors[1] / 8 and errors[2] < 1e-4, errors


def test_explicit_grid_and_logsnr_grid_agree():
    schedule, mixture, x_start, _, _ = _problem("linear")
    ts = make_grid(schedule, 15, "logsnr")
    lam = schedule.log_snr(ts)
    # lambda(1) = -5.03 lies below the window |lambda| <= 0.5 + log(15): one step joins it, the rest are uniform
    edge = 0.5 + math.log(15)
    assert float(lam[1]) == pytest.approx(-edge) and float(lam[0]) == pytest.approx(-5.025, abs=1e-3)
    torch.testing.assert_close(lam[2:] - lam[1:-1], torch.full((14,), float(lam[2] - lam[1]), dtype=torch.float64))
    model = mixture.model(schedule, "eps")
    a = sample(model, x_start, schedule, method="dpm_solver++", grid=ts)
    b = sample(model, x_start, schedule, method="dpm_solver++", steps=15)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_sampling_to_t_zero_is_finite_and_accurate():
    """t_end = 0 (sigma = 0): every method ends with a finite sample close to the PF-ODE endpoint."""
    schedule, mixture, x_start, _, _ = _problem("linear")
    ref = reference_pf_ode(mixture, LINEAR, x_start, 1.0, 0.0)
    model = mixture.model(schedule, "eps")
    for method in ("euler", "heun", "ddim", "dpm_solver", "dpm_solver++", "rk45", "ddpm", "euler_maruyama"):
        x = sample(model, x_start, schedule, method=method, steps=50, t_end=0.0,
                   generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(x).all(), method
        if method not in ("ddpm", "euler_maruyama"):
            assert float((x - ref).norm(dim=1).median()) < 0.05, method


def test_callback_sees_every_step_and_progress_bar_runs(capsys):
    schedule, mixture, x_start, _, _ = _problem("linear")
    seen = []
    sample(mixture.model(schedule), x_start, schedule, method="dpm_solver++", steps=6, callback=seen.append,
           progress=True)
    assert [d["i"] for d in seen] == list(range(6))
    assert seen[-1]["t"] == pytest.approx(1e-3) and seen[-1]["x"].shape == x_start.shape


def test_samplers_are_pure_functions_of_their_inputs():
    schedule, mixture, x_start, _, _ = _problem("linear")
    model = mixture.model(schedule)
    for method in ("dpm_solver++", "ddpm"):
        a = sample(model, x_start, schedule, method=method, steps=9, generator=torch.Generator().manual_seed(3))
        b = sample(model, x_start, schedule, method=method, steps=9, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_new_sampler_is_one_function_and_one_registration():
    """fn(denoiser, x, ts, *, generator, callback, progress, **own) plus register_sampler: sample() runs it, checks its
    own keyword against its signature, and it sees the bound denoiser (here: one x0 jump = 1-step DDIM to t = 0)."""
    from diffusion_lm.core import SAMPLERS, register_sampler

    def x0_jump(den, x, ts, *, scale: float = 1.0, generator=None, callback=None, progress=False):
        (x0,) = den(x, den.point(float(ts[0])), "x0")
        return scale * x0

    mixture, schedule = GaussianMixture.ring(), VPSchedule.linear()
    x_T = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    register_sampler("x0_jump", x0_jump)
    try:
        jump = sample(mixture.model(schedule), x_T, schedule, method="x0_jump", steps=1, t_end=0.0)
        ddim = sample(mixture.model(schedule), x_T, schedule, method="ddim", steps=1, t_end=0.0)
        torch.testing.assert_close(jump, ddim, rtol=1e-12, atol=1e-12)
        half = sample(mixture.model(schedule), x_T, schedule, method="x0_jump", steps=1, t_end=0.0, scale=0.5)
        torch.testing.assert_close(half, 0.5 * ddim, rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match="method='x0_jump' takes no 'eta'.*its own settings are: scale"):
            sample(mixture.model(schedule), x_T, schedule, method="x0_jump", steps=1, eta=0.5)
    finally:
        SAMPLERS.pop("x0_jump")
