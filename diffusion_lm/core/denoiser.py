"""The samplers' view of a model: any prediction kind, evaluated at one time for the whole batch.

``Denoiser`` holds no state between calls: it binds a model callable, its schedule and its
prediction kind, and converts the model's output with Python-float coefficients computed in
float64 (exact to double precision, and cheap per step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .arith import lincomb
from .checks import check_choice
from .parameterization import PREDICTIONS, Point, affine, points
from .schedules import Schedule

Model = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Denoiser", "Model", "Point", "model_output", "points", "time_dtype"]


def time_dtype(x: Tensor) -> torch.dtype:
    """The dtype a model is given t in: x's when float32 or float64, float32 otherwise (half precision)."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def model_output(model: Model, x: Tensor, t: Tensor) -> Tensor:
    """``model(x, t)`` for per-example float64 times t (B,), given in ``time_dtype(x)``; checked to be shaped like x."""
    pred = model(x, t.to(time_dtype(x)))
    if pred.shape != x.shape:
        raise ValueError(f"the model returned shape {tuple(pred.shape)}; it must match x {tuple(x.shape)}.")
    return pred


class Denoiser:
    """A model callable ``model(x, t) -> prediction`` seen through its schedule and prediction kind."""

    def __init__(self, model: Model, schedule: Schedule, prediction: str = "eps"):
        if not callable(model):
            raise ValueError(f"model must be callable as model(x, t), got {type(model).__name__}.")
        self.model = model
        self.schedule = schedule
        self.prediction = check_choice(prediction, PREDICTIONS, "prediction")

    def point(self, t: float) -> Point:
        return points(self.schedule, torch.tensor([t], dtype=torch.float64, device="cpu"))[0]

    def raw(self, x: Tensor, t: float) -> Tensor:
        """The model's own output at time ``t`` for every example, checked."""
        out = self.model(x, torch.full((x.shape[0],), t, dtype=time_dtype(x), device=x.device))
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"the model returned {got} for x of shape {tuple(x.shape)}; it must return a tensor "
                f"shaped like x holding its {self.prediction!r} prediction."
            )
        return out

    def coefficients(self, target: str, p: Point) -> tuple[float, float]:
        """(a, b) with ``target = a x + b prediction`` at ``p``."""
        if target == "velocity" and self.prediction == "score":
            return p.f, -0.5 * p.g2  # (31)
        return affine(self.prediction, target, p)

    def convert(self, pred: Tensor, x: Tensor, p: Point, target: str) -> Tensor:
        if target == self.prediction:
            return pred
        a, b = self.coefficients(target, p)
        return lincomb((b, pred), (a, x)) if a != 0.0 else b * pred

    def __call__(self, x: Tensor, p: Point, *targets: str) -> tuple[Tensor, ...]:
        """The model's prediction at ``p`` converted to each of ``targets``."""
        pred = self.raw(x, p.t)
        return tuple(self.convert(pred, x, p, kind) for kind in targets)
