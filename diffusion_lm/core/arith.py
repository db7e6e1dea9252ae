"""Tensor arithmetic with coefficients computed in float64."""

from __future__ import annotations

from torch import Tensor


def lincomb(*terms: tuple[float, Tensor]) -> Tensor:
    """sum_i c_i x_i with one allocation; the coefficients are Python floats (float64 precision)."""
    (c, x), *rest = terms
    out = x * c
    for c, x in rest:
        out.add_(x, alpha=c)
    return out
