"""Training objectives (THEORY section 4): denoising score matching and conditional flow matching."""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_choice
from .denoiser import Model, model_output
from .parameterization import PREDICTIONS, Point, affine, basis
from .schedules import FlowSchedule, Schedule
from .steps import per_example

WEIGHTINGS = ("none", "snr", "likelihood")
TIME_SAMPLINGS = ("uniform", "importance")


def _draw(shape, generator, device, dtype=torch.float64, normal=False) -> Tensor:
    gen_device = generator.device if generator is not None else device
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, dtype=dtype, device=gen_device).to(device)


def sample_time(
    batch: int,
    schedule: Schedule,
    *,
    t_sampling: str = "uniform",
    t_eps: float = 1e-3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw t (B,) on [t_eps, 1] and return it with its density pi(t), both float64.

    ``uniform``: pi = 1 / (1 - t_eps). ``importance``: pi(t) proportional to the likelihood weight
    g^2 / sigma^2 = -2 d lambda / dt (the slides' variance reduction), i.e. lambda uniform between
    lambda(1) and lambda(t_eps), mapped back with the exact inverse log-SNR.
    """
    check_choice(t_sampling, TIME_SAMPLINGS, "t_sampling")
    if not 0.0 <= t_eps < 1.0:
        raise ValueError(f"t_eps must lie in [0, 1), got {t_eps}.")
    u = _draw((batch,), generator, device)
    if t_sampling == "uniform":
        t = t_eps + (1 - t_eps) * u
        return t, torch.full_like(t, 1 / (1 - t_eps))
    lam_hi, lam_lo = schedule.log_snr(torch.tensor([t_eps, 1.0], dtype=torch.float64, device="cpu")).tolist()
    t = schedule.t_from_log_snr(lam_lo + u * (lam_hi - lam_lo)).to(u.device)
    return t, _likelihood_weight(schedule, t) / (2 * (lam_hi - lam_lo))


def _likelihood_weight(schedule: Schedule, t: Tensor) -> Tensor:
    return schedule.diffusion_sq(t) / schedule.sigma(t).pow(2).clamp_min(1e-30)


def loss_weight(schedule: Schedule, t: Tensor, weighting: str) -> Tensor:
    """w(t) of the noise-space loss ``w(t) ||eps_hat - eps||^2``: 1, SNR = alpha^2/sigma^2, or g^2/sigma^2."""
    check_choice(weighting, WEIGHTINGS, "weighting")
    if weighting == "none":
        return torch.ones_like(t, dtype=torch.float64, device="cpu")
    if weighting == "snr":
        return torch.exp(2 * schedule.log_snr(t))
    return _likelihood_weight(schedule, t)


def dsm_loss(
    model: Model, x0: Tensor, schedule: Schedule, *, prediction: str = "eps", weighting: str = "none",
    t_sampling: str = "uniform", t_eps: float = 1e-3, generator: torch.Generator | None = None, reduction: str = "mean",
) -> Tensor:
    """Denoising score matching (38) for a model of any parameterisation.

    An unbiased estimate of ``int_{t_eps}^1 w(t) E ||eps_hat(x_t, t) - eps||^2 dt`` (entries averaged),
    with eps_hat the model's output converted to noise prediction. ``weighting`` picks w: ``none``
    (the DDPM loss), ``snr`` (w = SNR = alpha^2/sigma^2; since ||eps_hat - eps||^2 = SNR ||x0_hat - x0||^2
    this is SNR^2 ||x0_hat - x0||^2, not plain x0 regression, which would be w = 1/SNR),
    ``likelihood`` (g^2/sigma^2: score matching with g^2 weighting, the likelihood bound). ``t_sampling='importance'``
    draws t from pi(t) proportional to g^2/sigma^2 and divides by pi, which makes the likelihood-weighted loss a
    constant times the MSE.
    The error is taken in the model's own space and rescaled, ``eps_hat - eps = b (pred - target)``,
    so x0 or v models stay well conditioned at small t.
    """
    check_choice(prediction, PREDICTIONS, "prediction")
    check_choice(reduction, ("mean", "none"), "reduction")
    batch = x0.shape[0]
    t, pi = sample_time(batch, schedule, t_sampling=t_sampling, t_eps=t_eps, generator=generator, device=x0.device)
    eps = _draw(x0.shape, generator, x0.device, x0.dtype, normal=True)
    c = Point.of(schedule, t)
    x_t = _times(c.alpha, x0) + _times(c.sigma, eps)  # (7)
    pred = model_output(model, x_t, t)
    q0, q1 = basis(prediction, c)
    target = _times(q0, x0) + _times(q1, eps)
    _, b = affine(prediction, "eps", c)
    if weighting == "likelihood" and t_sampling == "importance":
        lam_hi, lam_lo = schedule.log_snr(torch.tensor([t_eps, 1.0], dtype=torch.float64, device="cpu")).tolist()
        ratio = torch.full_like(t, 2 * (lam_hi - lam_lo))  # w / pi is constant here
    else:
        ratio = loss_weight(schedule, t, weighting) / pi
    weight = (ratio * torch.as_tensor(b, dtype=torch.float64, device="cpu") ** 2).to(x0.dtype)
    losses = weight * (pred - target).pow(2).flatten(1).mean(1)
    return losses.mean() if reduction == "mean" else losses


def flow_matching_loss(
    model: Model,
    x0: Tensor,
    schedule: Schedule | None = None,
    *,
    t_eps: float = 1e-3,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Conditional flow matching (102): ``E ||v_theta(x_t, t) - (alpha_t' x0 + sigma_t' eps)||^2``.

    The model predicts ``velocity`` (dx/dt of the PF-ODE); t is uniform on [t_eps, 1]. The schedule
    defaults to ``FlowSchedule()`` (alpha = 1 - t, sigma = t), where the target is eps - x0.
    """
    check_choice(reduction, ("mean", "none"), "reduction")
    schedule = schedule if schedule is not None else FlowSchedule()
    t, _ = sample_time(x0.shape[0], schedule, t_eps=t_eps, generator=generator, device=x0.device)
    eps = _draw(x0.shape, generator, x0.device, x0.dtype, normal=True)
    c = Point.of(schedule, t)
    x_t = _times(c.alpha, x0) + _times(c.sigma, eps)  # (7)
    pred = model_output(model, x_t, t)
    target = _times(c.alpha_dot, x0) + _times(c.sigma_dot, eps)
    losses = (pred - target).pow(2).flatten(1).mean(1)
    return losses.mean() if reduction == "mean" else losses


def _times(coef: float | Tensor, x: Tensor) -> Tensor:
    """coef (scalar or (B,) float64) times x, in x's dtype."""
    if isinstance(coef, Tensor):
        return per_example(coef.to(device=x.device, dtype=x.dtype), x) * x
    return coef * x
