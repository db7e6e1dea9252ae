"""Stochastic and DDIM-family samplers (THEORY section 5): Euler-Maruyama, DDPM, DDIM, Langevin, PC."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .arith import lincomb
from .denoiser import Denoiser, Model, Point
from .schedules import Schedule
from .steps import Callback, intervals, noise_like, report


def euler_maruyama(den: Denoiser, x: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Euler-Maruyama on the reverse SDE (29), (5.2). NFE = steps."""
    for i, pt, ps in intervals(den.schedule, ts, progress, "euler_maruyama"):
        x = _euler_maruyama_step(den, x, pt, ps, generator)
        report(callback, i, ps, x)
    return x


def _euler_maruyama_step(den: Denoiser, x: Tensor, pt: Point, ps: Point, generator: torch.Generator | None) -> Tensor:
    h = pt.t - ps.t
    (score,) = den(x, pt, "score")
    return x - h * (pt.f * x - pt.g2 * score) + math.sqrt(pt.g2 * h) * noise_like(x, generator)


def ddpm(den: Denoiser, x: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Ancestral DDPM sampling (83) on any grid: draw x_s from the Gaussian posterior q(x_s | x_t, x0_hat).

    With r = exp(-(lambda_s - lambda_t)) = alpha_t sigma_s / (alpha_s sigma_t), the posterior has mean
    ``r sigma_s / sigma_t x_t + alpha_s (1 - r^2) x0_hat`` and std ``sigma_s sqrt(1 - r^2)``; for a VP
    chain this is (83) with beta = 1 - alpha_t^2 / alpha_s^2. No noise at the last step. NFE = steps.
    """
    last = len(ts) - 2
    for i, pt, ps in intervals(den.schedule, ts, progress, "ddpm"):
        (x0,) = den(x, pt, "x0")
        h = ps.lam - pt.lam
        r, one_minus_r2 = math.exp(-h), -math.expm1(-2 * h)
        x = (r * ps.sigma / pt.sigma) * x + (ps.alpha * one_minus_r2) * x0
        if i < last:
            x = x + ps.sigma * math.sqrt(one_minus_r2) * noise_like(x, generator)
        report(callback, i, ps, x, x0)
    return x


def ddim_coefficients(pt: Point, ps: Point, eta: float) -> tuple[float, float]:
    """(c, sigma_eta) of the DDIM step t -> s: ``x_s = alpha_s x0_hat + c eps_hat + sigma_eta xi``."""
    h = ps.lam - pt.lam
    # (128): sigma_eta = eta sigma_s sqrt(1 - (alpha_t sigma_s)^2 / (alpha_s sigma_t)^2)
    sigma_eta = eta * ps.sigma * math.sqrt(-math.expm1(-2 * h)) if eta > 0 else 0.0
    return math.sqrt(max(ps.sigma**2 - sigma_eta**2, 0.0)), sigma_eta  # (129)


def ddim(den: Denoiser, x: Tensor, ts: Tensor, *, eta: float = 0.0, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """DDIM (84)-(87) with the stochasticity eta in [0, 1]: eta = 0 is the PF-ODE sampler
    (identical to DPM-Solver-1), eta = 1 matches ancestral DDPM in distribution. NFE = steps."""
    for i, pt, ps in intervals(den.schedule, ts, progress, "ddim"):
        pred = den.raw(x, pt.t)
        (a0, b0), (a1, b1) = den.coefficients("x0", pt), den.coefficients("eps", pt)  # (126), (127)
        c, sigma_eta = ddim_coefficients(pt, ps, eta)
        # (130) x_s = alpha_s x0_hat + c eps_hat + sigma_eta xi, each prediction affine in (x, pred)
        x_next = lincomb((ps.alpha * a0 + c * a1, x), (ps.alpha * b0 + c * b1, pred))
        if sigma_eta > 0:
            x_next.add_(noise_like(x, generator), alpha=sigma_eta)
        if callback is not None:
            report(callback, i, ps, x_next, den.convert(pred, x, pt, "x0"))
        x = x_next
    return x


def langevin_corrector(model: Model, x: Tensor, t: float, schedule: Schedule, *, prediction: str = "eps",
        steps: int = 1, snr: float = 0.16, generator: torch.Generator | None = None) -> Tensor:
    """Langevin dynamics at one fixed t targeting p_t: ``x <- x + delta score + sqrt(2 delta) z``.

    The step is ``delta = 2 (snr sigma_t)^2``: the ratio of the drift to the noise term is then ``snr``
    where the score has its typical size sqrt(d)/sigma_t. (score-SDE measures both norms on the batch
    instead; that rule couples examples and diverges in low dimension where ||score|| can vanish.)
    NFE = steps.
    """
    if snr <= 0:
        raise ValueError(f"snr must be > 0, got {snr}.")
    den = Denoiser(model, schedule, prediction)
    p = den.point(float(t))
    if p.sigma == 0.0:
        raise ValueError("Langevin needs sigma_t > 0 (the score is undefined at sigma = 0); use t > 0.")
    return _langevin(den, x, p, steps, snr, generator)


def _langevin(den: Denoiser, x: Tensor, p: Point, steps: int, snr: float, generator: torch.Generator | None) -> Tensor:
    delta = 2 * (snr * p.sigma) ** 2
    for _ in range(steps):
        (score,) = den(x, p, "score")
        x = x + delta * score + math.sqrt(2 * delta) * noise_like(x, generator)
    return x


def langevin(den: Denoiser, x: Tensor, ts: Tensor, *, corrector_steps: int = 1, snr: float = 0.16,
        generator: torch.Generator | None = None, callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Annealed Langevin dynamics (NCSN), ``sample(method="langevin")``: ``corrector_steps`` Langevin steps
    (those of ``langevin_corrector``) at each of ts[1:].

    Where sigma(t_end) = 0 the last level is the Tweedie denoising step x0_hat(x, t_{N-1}).
    NFE = steps * corrector_steps (at sigma(t_end) = 0: one denoising evaluation replaces the last level).
    """
    for i, pt, ps in intervals(den.schedule, ts, progress, "langevin"):
        x0 = None
        if ps.sigma == 0.0:
            (x0,) = den(x, pt, "x0")
            x = x0
        else:
            x = _langevin(den, x, ps, corrector_steps, snr, generator)
        report(callback, i, ps, x, x0)
    return x


annealed_langevin = langevin  # the earlier name of the annealed sampler, kept for compatibility


def predictor_corrector(den: Denoiser, x: Tensor, ts: Tensor, *, corrector_steps: int = 1, snr: float = 0.16,
        generator: torch.Generator | None = None, callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Predictor-corrector (score-SDE): Langevin corrector steps at t_i, then an Euler-Maruyama predictor to t_{i+1}.

    NFE = steps * (1 + corrector_steps).
    """
    for i, pt, ps in intervals(den.schedule, ts, progress, "pc"):
        x = _langevin(den, x, pt, corrector_steps, snr, generator)
        x = _euler_maruyama_step(den, x, pt, ps, generator)
        report(callback, i, ps, x)
    return x
