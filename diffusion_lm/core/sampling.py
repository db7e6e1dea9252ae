"""``sample``: one entry point over every sampler, with its arguments checked."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .checks import check_choice, check_in_range, check_positive_int
from .denoiser import Denoiser, Model
from .dpm_solvers import dpm_solver, dpm_solver_pp, unipc
from .grids import check_times, make_grid
from .ode_solvers import euler, heun, rk45
from .parameterization import PREDICTIONS
from .schedules import Schedule
from .sde_solvers import ddim, ddpm, euler_maruyama, langevin, predictor_corrector
from .steps import Callback

_COMMON = ("generator", "callback", "progress")
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
    "langevin": langevin,
    "pc": predictor_corrector,
}
METHODS = tuple(SAMPLERS)  # the built-in ones; ``register_sampler`` adds more to SAMPLERS


def register_sampler(name: str, fn: Callable[..., Tensor]) -> None:
    """Make ``fn(denoiser, x, ts, *, generator=None, callback=None, progress=False, **own)`` available as
    ``sample(..., method=name, **own)`` (and to the text pipeline); its keyword-only parameters are its settings."""
    params = inspect.signature(fn).parameters
    missing = [k for k in _COMMON if k not in params]
    if len(params) < 3 or missing:
        raise ValueError(f"a sampler is fn(denoiser, x, ts, *, generator=None, callback=None, progress=False, **own); "
                         f"{getattr(fn, '__name__', fn)!r} lacks {missing or 'the three positional arguments'}.")
    SAMPLERS[name] = fn
_ORDERS = {"dpm_solver": (1, 2, 3), "dpm_solver++": (1, 2, 3), "unipc": (1, 2, 3)}


def sampler_options(method: str) -> tuple[str, ...]:
    """The keyword arguments sampler ``method`` takes beyond the common ones
    (``generator``, ``callback``, ``progress``)."""
    check_choice(method, tuple(SAMPLERS), "method")
    params = inspect.signature(SAMPLERS[method]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _COMMON)


def _check_sampler_kwargs(method: str, sampler_kwargs: dict) -> None:
    own = sampler_options(method)
    for key in sampler_kwargs:
        if key not in own:
            takers = [m for m in SAMPLERS if key in sampler_options(m)]
            hint = (f"{key} applies only to method={', '.join(repr(m) for m in takers)}" if takers
                    else f"no sampler takes {key!r}")
            raise ValueError(f"method={method!r} takes no {key!r} ({hint}); its own settings are: "
                             f"{', '.join(own) or 'none'}.")
    if "eta" in sampler_kwargs:
        check_in_range(sampler_kwargs["eta"], 0.0, 1.0, "eta",
                       "Use 0 for the deterministic DDIM/ODE sampler, 1 for DDPM-like noise.")
    if "order" in sampler_kwargs and sampler_kwargs["order"] not in _ORDERS[method]:
        raise ValueError(f"order={sampler_kwargs['order']} is not valid for method={method!r}; "
                         f"valid orders: {_ORDERS[method]}.")
    if "corrector_steps" in sampler_kwargs:
        check_positive_int(sampler_kwargs["corrector_steps"], "corrector_steps")


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
    grid: str | Tensor = "logsnr",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    **sampler_kwargs: Any,
) -> Tensor:
    """Run the reverse process from ``x_T`` at ``t_start`` down to ``t_end`` and return x at ``t_end``.

    Binds ``model`` to its schedule and prediction kind once (``Denoiser``), builds the time grid, and calls
    the sampler ``fn(denoiser, x, ts, *, generator, callback, progress, **sampler_kwargs)``.

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
        grid: ``logsnr`` (uniform in log-SNR), ``time``, ``karras``, or a decreasing tensor of times.
        generator: random source for the stochastic methods.
        callback: called after every (accepted) step with ``{"i", "t", "x", "x0"}``.
        progress: show a tqdm progress bar.
        sampler_kwargs: the sampler's own settings (``sampler_options(method)``): ``eta`` (``ddim``,
            in [0, 1]); ``order`` (``dpm_solver`` 1-3, default 3; ``dpm_solver++`` and ``unipc`` 2 = 2M,
            3 = 3M, default 2); ``rtol``, ``atol`` (``rk45``); ``corrector_steps``, ``snr`` (``langevin``, ``pc``).
            Any other keyword is an error naming the valid ones.
    """
    check_choice(method, tuple(SAMPLERS), "method")
    check_choice(prediction, PREDICTIONS, "prediction")
    if not isinstance(x_T, Tensor) or not x_T.is_floating_point() or x_T.ndim < 1:
        raise ValueError("x_T must be a floating-point tensor of shape (B, ...).")
    _check_sampler_kwargs(method, sampler_kwargs)
    if isinstance(grid, Tensor):
        ts = make_grid(schedule, 1, grid)
        if steps is not None and steps != len(ts) - 1:
            raise ValueError(f"steps={steps} disagrees with the explicit grid of {len(ts) - 1} intervals; "
                             "pass steps=None.")
    else:
        if steps is None:
            raise ValueError("steps is required unless grid is an explicit tensor of times.")
        check_positive_int(steps, "steps")
        check_times(t_start, t_end)
        ts = make_grid(schedule, steps, grid, t_start, t_end)
    denoiser = Denoiser(model, schedule, prediction)
    with torch.no_grad():
        return SAMPLERS[method](denoiser, x_T, ts, generator=generator, callback=callback, progress=progress,
                                **sampler_kwargs)
