"""Argument checks shared by the core: every message names the problem and the fix."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def as_time(t: Tensor | float, name: str = "t") -> Tensor:
    """``t`` as a float64 tensor, checked to lie in [0, 1]."""
    t64 = t.to(torch.float64) if isinstance(t, Tensor) else torch.tensor(t, dtype=torch.float64, device="cpu")
    if not torch.all((t64 >= 0.0) & (t64 <= 1.0)):  # also rejects NaN
        bad = t64[~((t64 >= 0.0) & (t64 <= 1.0))].flatten()[:3].tolist()
        raise ValueError(
            f"{name} must lie in [0, 1] (continuous diffusion time: 0 is data, 1 is noise); "
            f"got values such as {bad}. Rescale integer timesteps, e.g. t = k / num_train_steps."
        )
    return t64


def output_dtype(t: Tensor | float) -> torch.dtype:
    """float64 for Python numbers and float64/integer tensors, float32 for other floating tensors."""
    if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.float64:
        return torch.float32
    return torch.float64


def check_choice(value: object, valid: Iterable[str], name: str) -> str:
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid choices are: {', '.join(valid)}.")
    return value  # type: ignore[return-value]


def check_in_range(value: float, low: float, high: float, name: str, hint: str = "") -> float:
    if not (low <= value <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}.{' ' + hint if hint else ''}")
    return float(value)


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return value
