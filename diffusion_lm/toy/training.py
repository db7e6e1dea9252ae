"""Training a small denoiser on 2D data with any of the three objectives: dsm, ssm, flow."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..core import FlowSchedule, dsm_loss, flow_matching_loss
from ..core.checks import check_choice
from ..core.schedules import Schedule
from .ssm import ssm_loss

LOSSES = ("dsm", "ssm", "flow")

@dataclass(frozen=True)
class Objective:
    """A training objective bound to its schedule and the prediction kind the model learns.

    ``loss``: ``dsm`` (denoising score matching (38), any prediction, weighting and t sampling),
    ``ssm`` (sliced score matching, seed 003; same options, plus ``projections``) or ``flow``
    (conditional flow matching (102): FlowSchedule and velocity prediction only).
    """

    loss: str = "dsm"
    prediction: str = "eps"
    weighting: str = "none"
    t_sampling: str = "uniform"
    projections: int = 1

    def __post_init__(self) -> None:
        check_choice(self.loss, LOSSES, "loss")
        if self.loss == "flow" and self.prediction != "velocity":
            raise ValueError(
                f"--loss flow trains a velocity model; use --prediction velocity, not {self.prediction!r}."
            )
        if self.loss == "flow" and (self.weighting != "none" or self.t_sampling != "uniform"):
            raise ValueError("flow matching has no weighting or t sampling options; leave them at none / uniform.")

    def __call__(self, model: nn.Module, x0: Tensor, schedule: Schedule, generator: torch.Generator) -> Tensor:
        if self.loss == "flow":
            if not isinstance(schedule, FlowSchedule):
                raise ValueError("flow matching trains on FlowSchedule(); pass --schedule flow.")
            return flow_matching_loss(model, x0, schedule, generator=generator)
        kw = dict(prediction=self.prediction, weighting=self.weighting, t_sampling=self.t_sampling, generator=generator)
        if self.loss == "ssm":
            return ssm_loss(model, x0, schedule, projections=self.projections, **kw)
        return dsm_loss(model, x0, schedule, **kw)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear from 1/warmup to 1 over ``warmup`` steps, then a cosine down to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def fit(
    model: nn.Module,
    sample_batch: Callable[[int, torch.Generator], Any],
    loss_fn: Callable[[nn.Module, Any, torch.Generator], Tensor],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    desc: str = "train",
    progress: bool = True,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """AdamW with a linear warm-up over 5% of the steps, then cosine decay to 0, and gradient clipping at 1.

    ``sample_batch(n, generator)`` draws a fresh batch every step (data, or data and labels) and
    ``loss_fn(model, batch, generator)`` scores it; ``after_step()`` runs after each
    optimiser step (e.g. an EMA update). Returns the seconds taken and the mean loss of the last 10%
    of steps.
    """
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: warmup_cosine(k, warmup, steps))
    model.train()
    start, tail = time.time(), []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        loss = loss_fn(model, sample_batch(batch_size, generator), generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        if step >= 0.9 * steps:
            tail.append(loss.item())
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    return {"seconds": time.time() - start, "final_loss": sum(tail) / max(len(tail), 1)}
