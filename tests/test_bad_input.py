"""Every public entry point rejects bad input with a ValueError that names the problem and the fix."""

import pytest
import torch

from diffusion_lm.core import VPSchedule, langevin_corrector, log_likelihood, make_grid, sample

S = VPSchedule.linear()
MODEL = lambda x, t: torch.zeros_like(x)
X = torch.randn(4, 2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"method": "dpm++"}, r"unknown method 'dpm\+\+'; valid choices are: euler_maruyama, ddpm, ddim, euler, heun, "
                              r"rk45, dpm_solver, dpm_solver\+\+, unipc, langevin, pc"),
        ({"method": "ddim", "steps": 0}, "steps must be an integer >= 1"),
        ({"method": "ddim", "steps": 2.5}, "steps must be an integer >= 1"),
        ({"method": "ddim", "steps": 5, "grid": "cosine"},
         "unknown grid 'cosine'; valid choices are: logsnr, time, karras"),
        ({"method": "ddim", "steps": 5, "eta": 1.5}, r"eta must lie in \[0.0, 1.0\]"),
        ({"method": "ddim", "steps": 5, "eta": -0.1}, r"eta must lie in \[0.0, 1.0\]"),
        ({"method": "euler", "steps": 5, "eta": 0.5}, "eta applies only to method='ddim'"),
        ({"method": "ddim", "steps": 5, "t_start": 0.5, "t_end": 0.5}, "need 0 <= t_end < t_start <= 1"),
        ({"method": "ddim", "steps": 5, "t_start": 1.2}, "need 0 <= t_end < t_start <= 1"),
        ({"method": "ddim", "steps": 5, "t_end": -0.1}, "need 0 <= t_end < t_start <= 1"),
        ({"method": "ddim", "steps": 5, "prediction": "noise"}, "unknown prediction 'noise'"),
        ({"method": "dpm_solver", "steps": 5, "order": 4},
         r"order=4 is not valid for method='dpm_solver'; valid orders: \(1, 2, 3\)"),
        ({"method": "heun", "steps": 5, "order": 2},
         r"method='heun' takes no 'order' \(order applies only to method='dpm_solver', 'dpm_solver\+\+', 'unipc'\); "
         r"its own settings are: none"),
        ({"method": "ddim", "steps": 5, "etta": 0.5},
         r"method='ddim' takes no 'etta' \(no sampler takes 'etta'\); its own settings are: eta"),
        ({"method": "ddim"}, "steps is required"),
        ({"method": "ddim", "steps": 3, "grid": torch.tensor([1.0, 0.5, 0.1])}, "disagrees with the explicit grid"),
        ({"method": "ddim", "grid": torch.tensor([1.0, 0.5, 0.7])}, "strictly decreasing"),
        ({"method": "ddim", "grid": torch.tensor([1.5, 0.5])}, r"must lie in \[0, 1\]"),
    ],
)
def test_sample_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample(MODEL, X, S, **kwargs)


@pytest.mark.parametrize("bad_model,message", [
    (lambda x, t: torch.zeros(x.shape[0], 3), r"returned \(4, 3\) for x of shape \(4, 2\)"),
    (lambda x, t: 0.0, "returned float"),
])
def test_model_with_the_wrong_output(bad_model, message):
    with pytest.raises(ValueError, match=message):
        sample(bad_model, X, S, method="dpm_solver++", steps=3)


def test_x_T_must_be_a_float_tensor():
    with pytest.raises(ValueError, match="floating-point tensor"):
        sample(MODEL, torch.zeros(4, 2, dtype=torch.long), S, method="ddim", steps=3)


def test_other_entry_points():
    with pytest.raises(ValueError, match="model must be callable"):
        sample("not a model", X, S, method="ddim", steps=3)
    with pytest.raises(ValueError, match="unknown divergence 'approx'"):
        log_likelihood(MODEL, X, S, divergence="approx")
    with pytest.raises(ValueError, match="sigma_t > 0"):
        langevin_corrector(MODEL, X, 0.0, S)
    with pytest.raises(ValueError, match="snr must be > 0"):
        langevin_corrector(MODEL, X, 0.5, S, snr=0.0)
    with pytest.raises(ValueError, match="need 0 <= t_end < t_start"):
        make_grid(S, 5, "logsnr", 0.2, 0.5)
    with pytest.raises(ValueError, match="alpha > 0 at t_start"):
        from diffusion_lm.core import FlowSchedule

        sample(MODEL, X, FlowSchedule(), method="dpm_solver", steps=3)
