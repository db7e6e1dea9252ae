"""Where a text model makes its decisions: token accuracy of one x0 prediction against the noise level.

Given the true noised response ``z_t = alpha_t x0 + sigma_t eps`` (118), the model's x0 estimate is
rounded (121) and compared with the reference tokens. The curve says at which log-SNR the text is
decided; training time and sampling steps spent far above it are wasted, and a sampler whose first
step jumps past it reads a blurred estimate as if it were clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .generation_config import GenerationConfig
from .rollout import Rollout

if TYPE_CHECKING:
    from .model import DiffusionLMModel


@dataclass
class AccuracyAtTime:
    """Token accuracy of the rounded x0 prediction at one time, over all slots and over non-pad slots."""

    t: float
    log_snr: float
    accuracy: float
    content_accuracy: float
    x0_rms: float


@torch.no_grad()
def token_accuracy_by_time(
    model: "DiffusionLMModel",
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    response_ids: Tensor,
    times: Sequence[float],
    *,
    seed: int = 0,
) -> list[AccuracyAtTime]:
    """Accuracy of one rounded x0 prediction from the true noised response at each of ``times``.

    A self-conditioning model is fed its own estimate at the same z_t (a second pass), as in training; a
    length-conditioned one (L2) the true length.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x0 = model.embed(response_ids)  # (117)
    content = response_ids != model.config.pad_token_id
    rollout = Rollout(model, GenerationConfig(), prompt_ids, prompt_mask, lengths=content.sum(-1))  # the true n (L2)
    rows = []
    for t in times:
        tt = torch.full((x0.shape[0],), float(t), dtype=torch.float64)
        alpha, sigma = float(model.schedule.alpha(tt)[0]), float(model.schedule.sigma(tt)[0])
        eps = torch.randn(x0.shape, generator=gen).to(x0.device, x0.dtype)
        z = alpha * x0 + sigma * eps  # (118)
        t_model = tt.to(torch.float32).to(x0.device)
        x0_hat = rollout.plain(z, t_model)[0]
        right = model.round(x0_hat) == response_ids
        rows.append(AccuracyAtTime(
            t=float(t), log_snr=float(model.schedule.log_snr(tt)[0]), accuracy=float(right.float().mean()),
            content_accuracy=float(right[content].float().mean()) if content.any() else float("nan"),
            x0_rms=float(x0_hat.pow(2).mean().sqrt()),
        ))
    return rows
