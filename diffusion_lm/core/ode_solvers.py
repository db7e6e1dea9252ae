"""Probability-flow ODE solvers in time (THEORY (31), (43)-(47)) and the adaptive Dormand-Prince integrator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser
from .grids import EDGE_LOG_SNR
from .steps import Callback, intervals, report


def euler(den: Denoiser, x: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Euler on the PF-ODE (43): ``x_s = x_t + (s - t) v(x_t, t)``. NFE = steps."""
    for i, pt, ps in intervals(den.schedule, ts, progress, "euler"):
        (v,) = den(x, pt, "velocity")
        x = x + (ps.t - pt.t) * v
        report(callback, i, ps, x)
    return x


def heun(den: Denoiser, x: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Heun on the PF-ODE (44)-(47): an Euler predictor, then the average of both slopes.

    NFE = 2 * steps, or 2 * steps - 1 when sigma(t_end) = 0: the velocity is undefined there, so
    the last step stays an Euler step (as in EDM).
    """
    for i, pt, ps in intervals(den.schedule, ts, progress, "heun"):
        h = ps.t - pt.t
        (v,) = den(x, pt, "velocity")
        x_euler = x + h * v  # (44)
        if ps.sigma == 0.0:
            x = x_euler
        else:
            (v_next,) = den(x_euler, ps, "velocity")
            x = x + h / 2 * (v + v_next)  # (47)
        report(callback, i, ps, x)
    return x


def rk45(den: Denoiser, x: Tensor, ts: Tensor, *, rtol: float = 1e-5, atol: float = 1e-5,
        generator: torch.Generator | None = None, callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Adaptive Dormand-Prince 5(4) on the PF-ODE from ``ts[0]`` to ``ts[-1]``; the reference solver.

    Only the endpoints of ``ts`` matter, and its number of intervals sets the first trial step.
    NFE is adaptive: 6 per attempted step plus 1, set by ``rtol`` / ``atol``. ``callback`` is called after
    every accepted step (``x0`` None). When sigma(t_end) = 0
    it integrates to where the log-SNR reaches the grid edge (sigma/alpha = 0.002) and takes the
    exact data-prediction step from there (1 more NFE).
    """
    t0, t1 = float(ts[0]), float(ts[-1])
    schedule = den.schedule
    denoise_last = float(schedule.sigma(t1)) == 0.0
    if denoise_last:
        t1 = min(float(schedule.t_from_log_snr(EDGE_LOG_SNR)), (t0 + t1) / 2)

    def velocity(t: float, y: Tensor) -> Tensor:
        return den(y, den.point(t), "velocity")[0]

    accepted = [0]

    def on_accept(t: float, y: Tensor) -> None:
        report(callback, accepted[0], den.point(t), y)
        accepted[0] += 1

    x, _ = solve_ode(velocity, x, t0, t1, rtol=rtol, atol=atol, h0=(t1 - t0) / (len(ts) - 1), progress=progress,
                     on_accept=on_accept)
    if denoise_last:
        (x,) = den(x, den.point(t1), "x0")
        report(callback, accepted[0], den.point(float(ts[-1])), x, x)
    return x


# Dormand & Prince (1980) RK5(4)7FM tableau
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B = _A[6] + (0.0,)  # 5th order weights, first-same-as-last
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)  # 5th minus 4th order


def solve_ode(fn: Callable[[float, Tensor], Tensor], y: Tensor, t0: float, t1: float, *, rtol: float = 1e-5,
        atol: float = 1e-5, h0: float | None = None, max_steps: int = 100_000, progress: bool = False,
        on_accept: Callable[[float, Tensor], None] | None = None) -> tuple[Tensor, int]:
    """Integrate ``dy/dt = fn(t, y)`` from t0 to t1 with adaptive Dormand-Prince 5(4).

    The error of each example (leading dimension) is measured separately, RMS over its entries
    relative to ``atol + rtol * |y|``; a step is accepted when every example's error is <= 1.
    ``on_accept(t, y)`` is called after every accepted step (never for a rejected trial).
    Returns ``(y(t1), number of fn evaluations)``.
    """
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}.")
    span = t1 - t0
    direction = 1.0 if span > 0 else -1.0
    h = abs(h0) if h0 else abs(span) / 100
    t, k1 = t0, fn(t0, y)
    nfe = 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=abs(span), desc="rk45", leave=False)
    for _ in range(max_steps):
        if direction * (t1 - t) <= 0:
            break
        h = min(h, abs(t1 - t))
        hs = direction * h
        ks = [k1]
        for j in range(1, 7):
            yj = y + hs * sum(a * k for a, k in zip(_A[j], ks) if a != 0.0)
            ks.append(fn(t + _C[j] * hs, yj))
        nfe += 6
        y_new = yj  # stage 7 is evaluated at the 5th-order solution (FSAL)
        err = hs * sum(e * k for e, k in zip(_E, ks) if e != 0.0)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        ratio = (err / scale).flatten(1).pow(2).mean(1).sqrt().max().item()
        if ratio <= 1.0:
            t_new = t1 if h == abs(t1 - t) else t + hs
            if bar is not None:
                bar.update(abs(t_new - t))
            t, y, k1 = t_new, y_new, ks[6]
            if on_accept is not None:
                on_accept(t, y)
        factor = 5.0 if ratio == 0.0 else min(5.0, max(0.2, 0.9 * ratio ** (-1 / 5)))
        h = h * (min(1.0, factor) if ratio > 1.0 else factor)
        if h < 1e-14 * max(1.0, abs(t)):
            raise RuntimeError(f"rk45 step size underflow at t={t:.6g}: the ODE is too stiff "
                               "or the model returns non-finite values.")
    else:
        raise RuntimeError(f"rk45 did not reach t={t1} in {max_steps} steps; loosen rtol/atol.")
    if bar is not None:
        bar.close()
    return y, nfe
