"""Reverse-time grids 1 >= t_N > ... > t_0 >= 0 for the samplers (THEORY section 5)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import check_choice, check_positive_int
from .schedules import LOG_SNR_LIMIT, Schedule

GRIDS = ("logsnr", "time", "karras")

# The log-SNR grids space their steps inside the window |lambda| <= edge_log_snr(steps), where the
# PF-ODE of unit-scale data does its work. Beyond -edge the noise dwarfs the data (x0_hat is nearly
# the data mean, which one exponential-integrator step handles exactly), so the start joins the
# window in one step; an infinite-log-SNR end (sigma = 0 at t = 0, alpha = 0 at t = 1) likewise.
# The last step into sigma = 0 costs accuracy like sigma/alpha at the edge, so the window widens as
# steps grow, up to EDM's sigma_min = 0.002. Measured on Gaussian mixtures in bench/samplers.py.
EDGE_LOG_SNR = -math.log(0.002)
KARRAS_RHO = 7.0


def edge_log_snr(steps: int) -> float:
    """Half-width of the log-SNR window of a grid of ``steps`` intervals: 0.5 + log(steps), in [2, 6.2]."""
    return min(max(0.5 + math.log(steps), 2.0), EDGE_LOG_SNR)


def make_grid(
    schedule: Schedule,
    steps: int,
    grid: str | Tensor = "logsnr",
    t_start: float = 1.0,
    t_end: float = 1e-3,
) -> Tensor:
    """Decreasing float64 times of length ``steps + 1`` from ``t_start`` to ``t_end``.

    ``logsnr`` is uniform in lambda_t (the accurate default for few steps) inside the window described
    above, ``time`` uniform in t, ``karras`` uniform in (sigma/alpha)^(1/7) as in EDM inside the same
    window; a tensor is checked and used as given.
    """
    if isinstance(grid, Tensor):
        return check_grid(grid)
    check_choice(grid, GRIDS, "grid")
    check_positive_int(steps, "steps")
    check_times(t_start, t_end)
    if grid == "time":
        ts = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64, device="cpu")
    else:
        lam_a, lam_b = schedule.log_snr(torch.tensor([t_start, t_end], dtype=torch.float64, device="cpu")).tolist()
        # a start below the window, and an infinite-log-SNR end, are joined by one step of their own
        edge = edge_log_snr(steps)
        head = lam_a < -edge and steps > 1
        tail = lam_b >= LOG_SNR_LIMIT and steps - head > 1
        lam_a, lam_b = max(lam_a, -edge) if head else lam_a, min(lam_b, edge) if tail else lam_b
        inner = steps - head - tail
        if grid == "logsnr":
            lam = torch.linspace(lam_a, lam_b, inner + 1, dtype=torch.float64, device="cpu")
        else:  # karras: uniform in s^(1/rho) with s = sigma/alpha = exp(-lambda)
            ramp = torch.linspace(0, 1, inner + 1, dtype=torch.float64, device="cpu")
            s_max, s_min = math.exp(-lam_a / KARRAS_RHO), math.exp(-lam_b / KARRAS_RHO)
            lam = -KARRAS_RHO * torch.log(s_max + ramp * (s_min - s_max))
        ts = schedule.t_from_log_snr(lam)
        parts = [torch.tensor([t_start], dtype=torch.float64, device="cpu")] if head else []
        parts.append(ts)
        if tail:
            parts.append(torch.tensor([t_end], dtype=torch.float64, device="cpu"))
        ts = torch.cat(parts)
    ts[0], ts[-1] = t_start, t_end
    return check_grid(ts)


def check_times(t_start: float, t_end: float) -> None:
    if not (0.0 <= t_end < t_start <= 1.0):
        raise ValueError(
            f"need 0 <= t_end < t_start <= 1 (sampling runs from noise at t_start down to t_end), "
            f"got t_start={t_start}, t_end={t_end}."
        )


def check_grid(ts: Tensor) -> Tensor:
    ts = torch.as_tensor(ts).to(torch.float64).flatten().cpu()
    if ts.numel() < 2:
        raise ValueError("an explicit grid needs at least 2 times (t_start and t_end).")
    if not torch.all((ts >= 0) & (ts <= 1)):
        raise ValueError("grid times must lie in [0, 1]; rescale integer timesteps by the number of train steps.")
    if not torch.all(ts[1:] < ts[:-1]):
        raise ValueError("grid times must be strictly decreasing (from noise at t_start to data at t_end).")
    return ts
