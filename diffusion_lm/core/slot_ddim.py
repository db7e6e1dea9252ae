"""DDIM over a state whose slots each have their own time (A1): the step of (130) taken slot by slot.

``ts`` holds a time per grid point and slot, (K + 1, B, N) for a state x (B, N, D); the model is called as
``model(x, t)`` with t (B, N). Where every slot shares its time this is ``sde_solvers.ddim`` for an x0-predicting
model; a slot whose time does not change over a step keeps its state (h = 0: no noise, c = sigma_t).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .denoiser import time_dtype
from .schedules import Schedule
from .steps import Callback, noise_like


def ddim_per_slot(model: Callable[[Tensor, Tensor], Tensor], x: Tensor, ts: Tensor, schedule: Schedule, *,
                  eta: float = 0.0, generator: torch.Generator | None = None, callback: Callback | None = None,
                  progress: bool = False) -> Tensor:
    """DDIM (130) with x0 prediction, each slot j of x (B, N, D) stepping from ts[i, :, j] to ts[i + 1, :, j].

    ``callback`` gets ``{"i", "t", "x", "x0"}`` after every step, t the slot times (B, N) the step reached."""
    if ts.ndim != 3 or tuple(ts.shape[1:]) != tuple(x.shape[:2]) or ts.shape[0] < 2:
        raise ValueError(f"ts must be (K + 1, B, N) = (K + 1, {x.shape[0]}, {x.shape[1]}) slot times with K >= 1 "
                         f"steps; got {tuple(ts.shape)}.")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}.")
    ts = ts.to(torch.float64)
    steps = range(ts.shape[0] - 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="ddim_per_slot", leave=False)
    for i in steps:
        t, s = ts[i], ts[i + 1]
        x0 = model(x, t.to(time_dtype(x)))
        a_t, sig_t = schedule.alpha(t), schedule.sigma(t)
        a_s, sig_s = schedule.alpha(s), schedule.sigma(s)
        h = (schedule.log_snr(s) - schedule.log_snr(t)).clamp(min=0.0)
        sig_eta = eta * sig_s * torch.sqrt(-torch.expm1(-2 * h))  # (128)
        c = torch.sqrt((sig_s**2 - sig_eta**2).clamp(min=0.0))  # (129)
        # (130) x_s = alpha_s x0_hat + c eps_hat + sigma_eta xi, with eps_hat = (x_t - alpha_t x0_hat) / sigma_t (133)
        coef_x, coef_x0 = c / sig_t, a_s - c * a_t / sig_t
        x_next = (coef_x[..., None] * x.double() + coef_x0[..., None] * x0.double()).to(x.dtype)
        if eta > 0:
            x_next = x_next + (sig_eta[..., None].to(x.dtype) * noise_like(x, generator))
        if callback is not None:
            callback({"i": i, "t": s, "x": x_next, "x0": x0})
        x = x_next
    return x
