"""Schedules evaluated at Python floats compute in float64, as documented (not at t rounded to float32)."""

import pytest
import torch

from .helpers import all_schedules


@pytest.mark.parametrize("schedule", all_schedules())
def test_python_float_times_are_not_rounded_to_float32(schedule):
    for t in (0.3, 2e-3, 0.7123456789):
        tensor_t = torch.tensor(t, dtype=torch.float64)
        for name in ("alpha", "sigma", "log_snr", "drift_coef", "diffusion_sq"):
            assert float(getattr(schedule, name)(t)) == float(getattr(schedule, name)(tensor_t)), (name, t)
    lam = 0.123456789
    assert float(schedule.t_from_log_snr(lam)) == float(schedule.t_from_log_snr(torch.tensor(lam, dtype=torch.float64)))
