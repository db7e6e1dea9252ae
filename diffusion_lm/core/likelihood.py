"""Exact likelihood through the probability-flow ODE (THEORY section 7)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .checks import check_choice
from .denoiser import Denoiser, Model
from .ode_solvers import solve_ode
from .schedules import Schedule
from .steps import noise_like

DIVERGENCES = ("exact", "hutchinson")


def log_likelihood(
    model: Model, x0: Tensor, schedule: Schedule, *, prediction: str = "eps", divergence: str = "exact",
    t_eps: float = 1e-5, rtol: float = 1e-5, atol: float = 1e-5, generator: torch.Generator | None = None,
    hutchinson_noise: str = "rademacher", prior_log_prob: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """log p(x0) in nats per example (B,), by the change of variables along the PF-ODE.

    ``log p_{t_eps}(x0) = log p_1(x_1) + int_{t_eps}^1 div v_t(x_t) dt`` with x_t solving the PF-ODE
    (31) from x0 at t_eps to t = 1 (adaptive RK45, ``rtol``/``atol``). The divergence is ``exact``
    (one backward pass per dimension) or ``hutchinson`` (``eps^T dv/dx eps`` with one Rademacher or
    Gaussian probe per example, fixed along the path, so the estimate of the integral is unbiased).
    The prior is N(0, sigma_1^2 I) unless ``prior_log_prob(x_1) -> (B,)`` is given.
    """
    check_choice(divergence, DIVERGENCES, "divergence")
    check_choice(hutchinson_noise, ("rademacher", "gaussian"), "hutchinson_noise")
    if not 0.0 <= t_eps < 1.0:
        raise ValueError(f"t_eps must lie in [0, 1), got {t_eps}; the ODE runs from t_eps to 1.")
    den = Denoiser(model, schedule, prediction)
    batch, dim = x0.shape[0], x0[0].numel()
    probe = None
    if divergence == "hutchinson":
        probe = noise_like(x0, generator)
        if hutchinson_noise == "rademacher":
            probe = probe.sign()

    def dynamics(t: float, state: Tensor) -> Tensor:
        x = state[:, :dim].reshape(x0.shape)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (v,) = den(x, den.point(t), "velocity")
            div = _divergence(v, x, probe)
        return torch.cat([v.detach().reshape(batch, dim), div.detach()[:, None]], 1)

    state0 = torch.cat([x0.reshape(batch, dim), torch.zeros(batch, 1, dtype=x0.dtype, device=x0.device)], 1)
    with torch.no_grad():
        state1, _ = solve_ode(dynamics, state0, t_eps, 1.0, rtol=rtol, atol=atol)
    x1, delta = state1[:, :dim].reshape(x0.shape), state1[:, dim]
    if prior_log_prob is None:
        sigma1 = float(schedule.sigma(1.0))
        prior = (-0.5 * (x1.reshape(batch, dim) / sigma1).pow(2).sum(1)
                 - dim * (math.log(sigma1) + 0.5 * math.log(2 * math.pi)))
    else:
        prior = prior_log_prob(x1)
    return prior + delta


def _divergence(v: Tensor, x: Tensor, probe: Tensor | None) -> Tensor:
    """sum_i dv_i/dx_i per example: exactly (d backward passes) or ``probe^T (dv/dx) probe``."""
    if probe is not None:
        (grad,) = torch.autograd.grad((v * probe).sum(), x)
        return (grad * probe).flatten(1).sum(1)
    flat_v = v.flatten(1)
    div = torch.zeros(x.shape[0], dtype=v.dtype, device=v.device)
    for i in range(flat_v.shape[1]):
        (grad,) = torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=True)
        div = div + grad.flatten(1)[:, i]
    return div


def bits_per_dim(log_likelihood: Tensor, dim: int, *, data_width: float | None = None,
                 bins: int | None = None) -> Tensor:
    """Bits per dimension ``-log p / (d ln 2)`` of a log-likelihood in nats.

    For dequantised discrete data (``bins`` levels spread over a width ``data_width``, e.g. 256 levels
    scaled to [-1, 1] has width 2) the density is first turned into the probability of a unit bin:
    ``log P = log p + d log(data_width / bins)``.
    """
    if (data_width is None) != (bins is None):
        raise ValueError("give both data_width and bins (for discrete data) or neither (continuous data).")
    shift = 0.0 if bins is None else dim * math.log(data_width / bins)
    return -(log_likelihood + shift) / (dim * math.log(2))
