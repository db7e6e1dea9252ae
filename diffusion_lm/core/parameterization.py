"""Parameterisations of a denoiser's output, and exact conversion between them (THEORY section 3).

Every supported prediction is a linear combination ``c_x0 * x0 + c_eps * eps`` of the clean
sample and the noise, with coefficients that depend on t only:

    eps       (0, 1)
    x0        (1, 0)
    score     (0, -1/sigma)                  (35): grad log p_t = -E[eps | x_t] / sigma_t
    v         (-sigma/r, alpha/r)            v = alpha eps - sigma x0 for VP; r = sqrt(alpha^2 + sigma^2)
    velocity  (alpha', sigma')               dx/dt of the PF-ODE (31), the flow-matching target

Together with the state ``x_t = alpha x0 + sigma eps`` (7) any prediction determines (x0, eps), so
one 2x2 solve converts every kind into every other: ``target = a x_t + b pred``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .checks import as_time, check_choice
from .schedules import Schedule

PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


class Point(NamedTuple):
    """The path at one time: Python floats (``points``, what sampler steps use) or per-example tensors (``of``)."""

    t: float | Tensor
    alpha: float | Tensor
    sigma: float | Tensor
    lam: float | Tensor  # log-SNR (48)
    alpha_dot: float | Tensor
    sigma_dot: float | Tensor
    f: float | Tensor  # drift coefficient (1)
    g2: float | Tensor  # squared diffusion coefficient (1)

    @classmethod
    def of(cls, schedule: Schedule, t: Tensor) -> "Point":
        """The schedule's quantities at ``t`` (any shape), as float64 tensors."""
        t = t.to(torch.float64)
        return cls(t, schedule.alpha(t), schedule.sigma(t), schedule.log_snr(t), schedule.alpha_dot(t),
                   schedule.sigma_dot(t), schedule.drift_coef(t), schedule.diffusion_sq(t))


def points(schedule: Schedule, ts: Tensor) -> list[Point]:
    """``Point`` of Python floats at each time of ``ts``, evaluated in float64 in one vectorised pass."""
    return [Point(*row) for row in torch.stack(list(Point.of(schedule, ts.reshape(-1))), 1).tolist()]


_TINY = 1e-30


def _floor(value: float | Tensor) -> float | Tensor:
    """``value`` pushed away from zero to +-1e-30, keeping its sign, so singular points stay finite."""
    if isinstance(value, Tensor):
        return torch.where(value < 0, value.clamp(max=-_TINY), value.clamp(min=_TINY))
    return min(value, -_TINY) if value < 0 else max(value, _TINY)


def basis(kind: str, c: Point) -> tuple:
    """(c_x0, c_eps) with ``kind = c_x0 * x0 + c_eps * eps``."""
    if kind == "eps":
        return 0.0, 1.0
    if kind == "x0":
        return 1.0, 0.0
    if kind == "score":
        return 0.0, -1.0 / _floor(c.sigma)  # (35)
    if kind == "v":
        r = (c.alpha**2 + c.sigma**2) ** 0.5
        return -c.sigma / r, c.alpha / r
    if kind == "velocity":
        return c.alpha_dot, c.sigma_dot
    raise ValueError(f"unknown prediction {kind!r}; valid choices are: {', '.join(PREDICTIONS)}.")


def affine(source: str, target: str, c: Point) -> tuple:
    """(a, b) with ``target = a * x_t + b * source_prediction``."""
    if source == target:
        return 0.0, 1.0
    p0, p1 = basis(source, c)
    q0, q1 = basis(target, c)
    # [x; pred] = [[alpha, sigma], [p0, p1]] [x0; eps]  (7), solved for (x0, eps)
    det = _floor(c.alpha * p1 - c.sigma * p0)  # zero only where the source cannot determine the target
    return (q0 * p1 - q1 * p0) / det, (q1 * c.alpha - q0 * c.sigma) / det


def convert(
    pred: Tensor,
    x_t: Tensor,
    t: Tensor | float,
    schedule: Schedule,
    source: str = "eps",
    target: str = "x0",
) -> Tensor:
    """Convert a prediction at (x_t, t) from one parameterisation to another.

    Args:
        pred: the prediction, shaped like ``x_t`` (B, ...).
        x_t: the noisy state (B, ...).
        t: time per example (B,) or a scalar.
        schedule: the noise schedule of the path.
        source, target: one of ``eps``, ``x0``, ``v``, ``score``, ``velocity``.

    Returns:
        The ``target`` prediction in the dtype of ``pred``, computed in float64.
    """
    check_choice(source, PREDICTIONS, "source prediction")
    check_choice(target, PREDICTIONS, "target prediction")
    if pred.shape != x_t.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but x_t has {tuple(x_t.shape)}; they must match.")
    t64 = as_time(t).to(pred.device)
    if t64.ndim == 0:
        t64 = t64.expand(pred.shape[0])
    if t64.shape != (pred.shape[0],):
        raise ValueError(f"t must be a scalar or have shape (B,) = ({pred.shape[0]},), got {tuple(t64.shape)}.")
    a, b = affine(source, target, Point.of(schedule, t64))
    view = (-1,) + (1,) * (pred.ndim - 1)
    a = torch.as_tensor(a, dtype=torch.float64, device=pred.device).expand(t64.shape).reshape(view)
    b = torch.as_tensor(b, dtype=torch.float64, device=pred.device).expand(t64.shape).reshape(view)
    return (a * x_t.to(torch.float64) + b * pred.to(torch.float64)).to(pred.dtype)
