"""Guidance as model wrappers (THEORY section 6): each returns a callable with the model's signature."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .checks import check_choice
from .denoiser import Model
from .parameterization import PREDICTIONS, Point, affine
from .schedules import Schedule
from .steps import per_example


def guidance_weight(guidance_scale: float) -> float:
    """The one conversion between the two guidance conventions: diffusers' ``guidance_scale`` s (1 = off,
    ``uncond + s (cond - uncond)``), used by the text pipeline, to this module's w of (62) (0 = off): w = s - 1."""
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0 (1 = no guidance), got {guidance_scale}.")
    return guidance_scale - 1.0


def classifier_free(model_cond: Model, model_uncond: Model, scale: float) -> Model:
    """Classifier-free guidance (62): ``(1 + w) cond - w uncond``; w = 0 is the conditional model.

    Valid for every prediction kind, since each is affine in the score at fixed (x, t).
    """

    def guided(x: Tensor, t: Tensor) -> Tensor:
        cond = model_cond(x, t)
        if scale == 0.0:
            return cond
        return (1 + scale) * cond - scale * model_uncond(x, t)

    return guided


def classifier_guidance(
    model: Model,
    log_prob_grad: Callable[[Tensor, Tensor], Tensor],
    scale: float,
    schedule: Schedule,
    prediction: str = "eps",
) -> Model:
    """Classifier guidance (53)-(57): the score becomes ``score + w grad_x log p(y | x_t, t)``.

    ``log_prob_grad(x, t)`` returns grad_x log p_phi(y | x, t) shaped like x (autograd is enabled
    while it runs). The shift is written in the model's own parameterisation, e.g. for eps
    ``eps - w sigma_t grad`` (57).
    """
    check_choice(prediction, PREDICTIONS, "prediction")

    def guided(x: Tensor, t: Tensor) -> Tensor:
        pred = model(x, t)
        if scale == 0.0:
            return pred
        with torch.enable_grad():
            grad = log_prob_grad(x.detach(), t)
        if grad.shape != x.shape:
            raise ValueError(f"log_prob_grad returned shape {tuple(grad.shape)}; it must match x {tuple(x.shape)}.")
        # d prediction / d score at fixed x: the b of ``prediction = a x + b score``
        _, b = affine("score", prediction, Point.of(schedule, t))
        b = per_example(torch.as_tensor(b, dtype=torch.float64, device=x.device).expand(x.shape[0]), x)
        return (pred.to(torch.float64) + scale * b * grad.to(torch.float64)).to(pred.dtype)

    return guided
