"""Shared helpers for the tests."""

import pytest
import torch

from diffusion_lm.core import FlowSchedule, VESchedule, VPSchedule


def all_schedules():
    """Every schedule family, with ids for parametrised tests."""
    return [
        pytest.param(VPSchedule.linear(), id="vp-linear"),
        pytest.param(VPSchedule.cosine(), id="vp-cosine"),
        pytest.param(VPSchedule.sqrt(), id="vp-sqrt"),
        pytest.param(VPSchedule.sqrt().shifted(-1.5), id="vp-sqrt-shifted"),
        pytest.param(VPSchedule.cosine().shifted(1.0), id="vp-cosine-shifted"),
        pytest.param(VPSchedule.from_betas(torch.linspace(1e-4, 0.02, 1000)), id="vp-discrete"),
        pytest.param(VESchedule(0.01, 10.0), id="ve"),
        pytest.param(FlowSchedule(), id="flow"),
    ]


def reference_pf_ode(mixture, schedule, x_start, t_start=1.0, t_end=1e-3, tol=1e-12):
    """The PF-ODE (31) from ``x_start`` solved by scipy's DOP853 at tight tolerance, with the exact score.

    Independent of the package's samplers: only the schedule's f, g^2 and the mixture's score are used.
    """
    import numpy as np
    from scipy.integrate import solve_ivp

    shape = x_start.shape

    def rhs(t, y):
        x = torch.from_numpy(y).reshape(shape)
        tt = torch.full((shape[0],), t, dtype=torch.float64)
        f, g2 = float(schedule.drift_coef(t)), float(schedule.diffusion_sq(t))
        return (f * x - 0.5 * g2 * mixture.score(x, tt, schedule)).reshape(-1).numpy()

    sol = solve_ivp(rhs, (t_start, t_end), x_start.reshape(-1).numpy().astype(np.float64), method="DOP853",
                    rtol=tol, atol=tol)
    assert sol.success, sol.message
    return torch.from_numpy(sol.y[:, -1]).reshape(shape)


def slope(steps, errors):
    """Least-squares slope of log(error) against log(1/steps): the observed order of convergence."""
    import numpy as np

    return float(-np.polyfit(np.log(steps), np.log(errors), 1)[0])
