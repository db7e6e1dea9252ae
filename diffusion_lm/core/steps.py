"""Small pieces every sampler loop shares: the step iterator, noise draws, callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from .denoiser import Point, points
from .schedules import Schedule

Callback = Callable[[dict[str, Any]], None]


def intervals(schedule: Schedule, ts: Tensor, progress: bool, desc: str) -> Iterator[tuple[int, Point, Point]]:
    """Yield ``(i, point at t_i, point at t_{i+1})`` over a decreasing grid, with a progress bar if asked."""
    pts = points(schedule, ts)
    idx = range(len(pts) - 1)
    if progress:
        from tqdm.auto import tqdm

        idx = tqdm(idx, desc=desc, leave=False)
    for i in idx:
        yield i, pts[i], pts[i + 1]


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def report(callback: Callback | None, i: int, p: Point, x: Tensor, x0: Tensor | None = None) -> None:
    """Call ``callback({"i", "t", "x", "x0"})`` after step ``i`` reached time ``p.t``."""
    if callback is not None:
        callback({"i": i, "t": p.t, "x": x, "x0": x0})


def per_example(values: Tensor, like: Tensor) -> Tensor:
    """Reshape (B,) to broadcast against ``like`` of shape (B, ...)."""
    return values.reshape((-1,) + (1,) * (like.ndim - 1))

