"""A noisy classifier p_phi(y | x_t, t) for classifier guidance (53)-(57), trained by cross-entropy on x_t (52)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PretrainedConfig

from ..common.pretrained import check_sizes
from ..core.schedules import Schedule, VPSchedule, schedule_from_config
from .digits import NUM_CLASSES
from .unet import DigitsNetwork, ResBlock, _norm, encoder


class NoisyClassifierConfig(PretrainedConfig):
    """Configuration of :class:`NoisyClassifier`.

    Args:
        channels: width at 8x8; twice that at 4x4 and 2x2.
        time_dim: size of the sinusoidal embedding of t.
        num_classes: number of labels.
        schedule: the core schedule whose noised images x_t it classifies (the diffusion model's).
    """

    model_type = "diffusion-lm-noisy-classifier"

    def __init__(self, channels: int = 32, time_dim: int = 64, num_classes: int = NUM_CLASSES,
                 schedule: dict[str, Any] | None = None, **kwargs: Any):
        self.channels, self.time_dim, self.num_classes = channels, time_dim, num_classes
        self.schedule = dict(schedule) if schedule is not None else VPSchedule.cosine().config()
        super().__init__(**kwargs)
        check_sizes(self, "channels", "time_dim", "num_classes")
        schedule_from_config(self.schedule)


class NoisyClassifier(DigitsNetwork):
    """``classifier(x_t (B, 1, 8, 8), t (B,)) -> logits (B, num_classes)``: the U-Net's encoder, pooled."""

    config_class = NoisyClassifierConfig
    base_model_prefix = "classifier"

    def build_layers(self, config: NoisyClassifierConfig, emb: int) -> None:
        """The U-Net's ``encoder`` with one block per resolution and no dropout, then a pooled linear head."""
        self.inp = nn.Conv2d(1, config.channels, 3, padding=1)
        self.blocks, skips = encoder(config.channels, 1, emb, 0.0)
        width = skips[-1]  # at 2x2
        self.head = nn.Sequential(
            _norm(width), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, config.num_classes)
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = nn.functional.silu(self.embed_time(t))  # (B, 4c)
        h = self.inp(x.float())
        for layer in self.blocks:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return self.head(h)  # (B, num_classes)


def noisy_classifier_loss(
    classifier: NoisyClassifier, x0: Tensor, labels: Tensor, schedule: Schedule, *, t_eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(52): cross-entropy of the labels given x_t = alpha_t x0 + sigma_t eps (7), t uniform on [t_eps, 1]."""
    t = t_eps + (1 - t_eps) * torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    view = (-1,) + (1,) * (x0.ndim - 1)
    x_t = schedule.alpha(t).reshape(view).to(x0.dtype) * x0 + schedule.sigma(t).reshape(view).to(x0.dtype) * eps
    return nn.functional.cross_entropy(classifier(x_t, t.float()), labels)


def log_prob_grad(classifier: NoisyClassifier, labels: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``grad_x log p_phi(y | x, t)`` for fixed labels (B,), as ``classifier_guidance`` takes it."""

    def grad(x: Tensor, t: Tensor) -> Tensor:
        x = x.detach().requires_grad_(True)
        logp = torch.log_softmax(classifier(x, t), -1).gather(1, labels.to(x.device)[:, None]).sum()
        (g,) = torch.autograd.grad(logp, x)
        return g.to(x.dtype)

    return grad
