"""``sample``: one entry point over every sampler, with its arguments checked."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._checks import check_choice, check_in_range, check_positive_int
from .denoiser import Model
from .dpm_solvers import dpm_solver, dpm_solver_pp, unipc
from .grids import check_times, make_grid
from .ode_solvers import euler, heun, rk45
from .parameterization import PREDICTIONS
from .schedules import Schedule
from .sde_solvers import annealed_langevin, ddim, ddpm, euler_maruyama, predictor_corrector
from .steps import Callback

SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler_maruyama": euler_maruyama,
    "ddpm": ddpm,
    "ddim": ddim,
    "euler": euler,
    "heun": heun,
    "rk45": rk45,
    "dpm_solver": dpm_solver,
    "dpm_solver++": dpm_solver_pp,
    "unipc": unipc,
    "langevin": annealed_langevin,
    "pc": predictor_corrector,
}
METHODS = tuple(SAMPLERS)
_ORDERS = {"dpm_solver": (1, 2, 3), "dpm_solver++": (1, 2, 3), "unipc": (1, 2, 3)}
_STOCHASTIC = ("euler_maruyama", "ddpm", "ddim", "langevin", "pc")


def sample(
    model: Model,
    x_T: Tensor,
    schedule: Schedule,
    *,
    method: str,
    steps: int | None = None,
    prediction: str = "eps",
    t_start: float = 1.0,
    t_end: float = 1e-3,
    eta: float = 0.0,
    order: int | None = None,
    grid: str | Tensor = "logsnr",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    corrector_steps: int = 1,
    snr: float = 0.16,
) -> Tensor:
    """Run the reverse process from ``x_T`` at ``t_start`` down to ``t_end`` and return x at ``t_end``.

    Args:
        model: ``model(x, t) -> prediction`` with x (B, ...) and t (B,); returns a tensor shaped like x
            holding the ``prediction`` kind. Bind anything else it needs (labels, prompts) in a closure.
        x_T: the starting state, e.g. ``sigma_1 * randn`` for VP schedules.
        schedule: the noise schedule the model was trained with.
        method: ``euler_maruyama``, ``ddpm``, ``ddim``, ``euler``, ``heun``, ``rk45``, ``dpm_solver``,
            ``dpm_solver++``, ``unipc`` (DPM-Solver++ with a corrector, the most accurate at 10-20 NFE),
            ``langevin`` (annealed) or ``pc`` (predictor-corrector). Each sampler's docstring states
            its number of model evaluations (NFE) for a given ``steps``.
        steps: number of grid intervals (optional when ``grid`` is an explicit tensor).
        prediction: what the model outputs: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        eta: DDIM stochasticity in [0, 1] (``ddim`` only).
        order: solver order for ``dpm_solver`` (1-3, default 3), ``dpm_solver++`` and ``unipc`` (2 = 2M, 3 = 3M, default 2).
        grid: ``logsnr`` (uniform in log-SNR), ``time``, ``karras``, or a decreasing tensor of times.
        generator: random source for the stochastic methods.
        callback: called after every step with ``{"i", "t", "x", "x0"}``.
        progress: show a tqdm progress bar.
        rtol, atol: tolerances of ``rk45``.
        corrector_steps, snr: Langevin steps per level and their signal-to-noise ratio (``langevin``, ``pc``).
    """
    check_choice(method, METHODS, "method")
    check_choice(prediction, PREDICTIONS, "prediction")
    if not isinstance(x_T, Tensor) or not x_T.is_floating_point() or x_T.ndim < 1:
        raise ValueError("x_T must be a floating-point tensor of shape (B, ...).")
    check_in_range(eta, 0.0, 1.0, "eta", "Use 0 for the deterministic DDIM/ODE sampler, 1 for DDPM-like noise.")
    if eta != 0.0 and method != "ddim":
        raise ValueError(f"eta applies only to method='ddim', not {method!r}; leave eta=0.")
    if order is not None and order not in _ORDERS.get(method, ()):
        valid = _ORDERS.get(method)
        raise ValueError(
            f"order={order} is not valid for method={method!r}; "
            + (f"valid orders: {valid}." if valid else "only dpm_solver, dpm_solver++ and unipc take an order.")
        )
    if isinstance(grid, Tensor):
        ts = make_grid(schedule, 1, grid)
        if steps is not None and steps != len(ts) - 1:
            raise ValueError(f"steps={steps} disagrees with the explicit grid of {len(ts) - 1} intervals; pass steps=None.")
    else:
        if steps is None:
            raise ValueError("steps is required unless grid is an explicit tensor of times.")
        check_positive_int(steps, "steps")
        check_times(t_start, t_end)
        ts = make_grid(schedule, steps, grid, t_start, t_end)
    check_positive_int(corrector_steps, "corrector_steps")

    kwargs: dict = {"prediction": prediction, "callback": callback, "progress": progress}
    if method in _STOCHASTIC:
        kwargs["generator"] = generator
    if method == "ddim":
        kwargs["eta"] = eta
    if method in _ORDERS and order is not None:
        kwargs["order"] = order
    if method == "rk45":
        kwargs.update(rtol=rtol, atol=atol)
    if method in ("langevin", "pc"):
        kwargs.update(corrector_steps=corrector_steps, snr=snr)
    with torch.no_grad():
        return SAMPLERS[method](model, x_T, ts, schedule, **kwargs)
