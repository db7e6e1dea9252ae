"""Consistency distillation (seed 003; Song et al. 2023): a one- or two-step sampler from a trained diffusion model.

A consistency function maps every point of a PF-ODE (31) trajectory to the trajectory's end at
t_min: ``f(x_t, t) = x_{t_min}``. It is learned from a teacher by making f agree with itself on
neighbouring times of one trajectory, where the teacher solves the ODE between them:

    L = E_{x0, n, eps} || f_theta(x_{t_{n+1}}, t_{n+1}) - f_target(x_hat_{t_n}, t_n) ||^2,
    x_{t_{n+1}} = alpha x0 + sigma eps  (7),   x_hat_{t_n} = one teacher ODE step from x_{t_{n+1}},

with f_target an exponential moving average of f_theta (no gradient through it). The boundary
condition f(x, t_min) = x is built in: ``f = c_skip(t) (alpha_min / alpha_t) x + c_out(t) F(x, t)`` with
EDM's c_skip = sigma_d^2 / ((s - s_min)^2 + sigma_d^2), c_out = sigma_d (s - s_min) / sqrt(sigma_d^2 + s^2)
written in the VE-equivalent noise level s = sigma_t / alpha_t, so c_skip(t_min) = 1 and c_out(t_min) = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..core import sample
from ..core.denoiser import Model
from ..core.schedules import Schedule
from ..core.steps import noise_like, per_example

TEACHER_SOLVERS = ("heun", "euler", "ddim", "dpm_solver++")


class ConsistencyFunction(nn.Module):
    """``f(x, t) = c_skip(t) (alpha_min / alpha_t) x + c_out(t) F(x, t)`` with f(x, t_min) = x exactly.

    Args:
        net: ``F(x, t) -> tensor shaped like x`` (e.g. a :class:`ToyMLP`).
        schedule: the teacher's schedule.
        t_min: the trajectory end the function maps to (> 0: the score is undefined at sigma = 0).
        sigma_data: standard deviation of the data, sets c_skip and c_out.
    """

    def __init__(self, net: nn.Module, schedule: Schedule, t_min: float = 2e-3, sigma_data: float = 1.0):
        super().__init__()
        if not 0.0 < t_min < 1.0 or float(schedule.sigma(t_min)) <= 0.0:
            raise ValueError(f"t_min must lie in (0, 1) with sigma(t_min) > 0, got t_min={t_min}.")
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}.")
        self.net, self.schedule = net, schedule
        self.t_min, self.sigma_data = float(t_min), float(sigma_data)
        self._alpha_min = float(schedule.alpha(self.t_min))
        self._s_min = float(schedule.sigma(self.t_min)) / self._alpha_min

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(c_skip alpha_min / alpha_t, c_out, alpha_t) per example, float64."""
        t = t.to(torch.float64)
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)
        s, sd = sigma / alpha, self.sigma_data
        c_skip = sd**2 / ((s - self._s_min) ** 2 + sd**2)
        c_out = sd * (s - self._s_min) / torch.sqrt(sd**2 + s**2)
        return c_skip * self._alpha_min / alpha, c_out, alpha

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if torch.any(t < self.t_min - 1e-12):
            raise ValueError(f"the consistency function is defined for t >= t_min = {self.t_min}.")
        a, b, _ = self.coefficients(t)
        a, b = per_example(a.to(x.dtype), x), per_example(b.to(x.dtype), x)
        return a * x + b * self.net(x, t.to(x.dtype))


def distillation_grid(schedule: Schedule, intervals: int, t_min: float, grid: str = "logsnr") -> Tensor:
    """Increasing float64 times ``t_min = t_0 < ... < t_N = 1``: the core's sampling grid, reversed."""
    from ..core import make_grid

    return make_grid(schedule, intervals, grid, t_start=1.0, t_end=t_min).flip(0)


def consistency_distillation_loss(
    student: ConsistencyFunction,
    target: ConsistencyFunction,
    teacher: Model,
    x0: Tensor,
    times: Tensor,
    *,
    teacher_prediction: str = "eps",
    solver: str = "heun",
    groups: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The consistency distillation loss above, on a batch of data ``x0`` (B, ...).

    ``times`` is an increasing grid from t_min to 1 (``distillation_grid``); each example draws its
    interval n uniformly. The teacher's step t_{n+1} -> t_n is the core sampler ``solver`` on that
    one interval (Heun: 2 NFE, the choice of the paper), one call per distinct interval; ``groups``
    caps the distinct intervals of a batch (drawn without replacement, then shared out at random,
    so each example's interval stays uniform) to save calls. Squared L2 distance, entries averaged.
    """
    if solver not in TEACHER_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; valid choices are: {', '.join(TEACHER_SOLVERS)}.")
    times = times.to(torch.float64)
    if times.ndim != 1 or len(times) < 2 or not torch.all(times[1:] > times[:-1]):
        raise ValueError("times must be an increasing 1-D grid from t_min to 1 with at least 2 entries.")
    if abs(float(times[0]) - student.t_min) > 1e-9:
        raise ValueError(f"times must start at the student's t_min = {student.t_min}, got {float(times[0])}.")
    batch = x0.shape[0]
    device = generator.device if generator is not None else x0.device
    intervals = len(times) - 1
    if groups is None or groups >= intervals:
        n = torch.randint(0, intervals, (batch,), generator=generator, device=device)
    else:
        chosen = torch.randperm(intervals, generator=generator, device=device)[:groups]
        n = chosen[torch.randint(0, groups, (batch,), generator=generator, device=device)]
    n = n.to(x0.device)
    eps = noise_like(x0, generator)
    t_hi, t_lo = times[n + 1], times[n]
    alpha, sigma = student.schedule.alpha(t_hi), student.schedule.sigma(t_hi)
    x_hi = per_example(alpha.to(x0.dtype), x0) * x0 + per_example(sigma.to(x0.dtype), x0) * eps  # (7)
    x_lo = torch.empty_like(x_hi)
    for k in n.unique().tolist():
        rows = n == k
        step = torch.stack([times[k + 1], times[k]])
        x_lo[rows] = sample(teacher, x_hi[rows], student.schedule, method=solver, grid=step,
                            prediction=teacher_prediction).to(x0.dtype)
    with torch.no_grad():
        anchor = target(x_lo, t_lo.to(x0.dtype))
    return (student(x_hi, t_hi.to(x0.dtype)) - anchor).pow(2).flatten(1).mean(1).mean()


@torch.no_grad()
def consistency_sample(
    model: ConsistencyFunction,
    x_T: Tensor,
    times: Sequence[float] = (1.0,),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Multistep consistency sampling: ``x = f(x_T, times[0])``, then for each later time tau
    ``x = f(alpha_tau x + sigma_tau z, tau)`` (re-noise with (7), denoise in one step). NFE = len(times).
    """
    times = [float(t) for t in times]
    if not times or any(b >= a for a, b in zip(times, times[1:])) or times[-1] < model.t_min or times[0] > 1.0:
        raise ValueError(
            f"times must decrease within [t_min = {model.t_min}, 1], e.g. (1.0,) or (1.0, 0.3); got {times}."
        )
    full = lambda t: torch.full((x_T.shape[0],), t, dtype=x_T.dtype, device=x_T.device)
    x = model(x_T, full(times[0]))
    for tau in times[1:]:
        z = noise_like(x, generator)
        x = model(float(model.schedule.alpha(tau)) * x + float(model.schedule.sigma(tau)) * z, full(tau))
    return x


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    """``target <- decay * target + (1 - decay) * online``, parameter by parameter."""
    for p_t, p_o in zip(target.parameters(), online.parameters()):
        p_t.lerp_(p_o, 1.0 - decay)
