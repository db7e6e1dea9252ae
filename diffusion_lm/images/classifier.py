"""A noisy classifier p_phi(y | x_t, t) for classifier guidance (53)-(57), trained by cross-entropy on x_t (52)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PretrainedConfig

from ..common.layers import timestep_embedding
from ..common.pretrained import SmallPreTrainedModel
from ..core.schedules import Schedule, VPSchedule, schedule_from_config
from .digits import NUM_CLASSES
from .unet import ResBlock, _norm


class NoisyClassifierConfig(PretrainedConfig):
    """Configuration of :class:`NoisyClassifier`.

    Args:
        channels: width at 8x8; twice that at 4x4 and 2x2.
        time_dim: size of the sinusoidal embedding of t.
        num_classes: number of labels.
        schedule: the core schedule whose noised images x_t it classifies (the diffusion model's).
    """

    model_type = "diffusion-lm-noisy-classifier"

    def __init__(
        self,
        channels: int = 32,
        time_dim: int = 64,
        num_classes: int = NUM_CLASSES,
        schedule: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.channels, self.time_dim, self.num_classes = channels, time_dim, num_classes
        self.schedule = dict(schedule) if schedule is not None else VPSchedule.cosine().config()
        super().__init__(**kwargs)
        for name in ("channels", "time_dim", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"NoisyClassifierConfig.{name} must be an integer >= 1, got {value!r}.")
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (cosine and sine halves), got {self.time_dim}.")
        schedule_from_config(self.schedule)


class NoisyClassifier(SmallPreTrainedModel):
    """``classifier(x_t (B, 1, 8, 8), t (B,)) -> logits (B, num_classes)``: the U-Net's encoder, pooled."""

    config_class = NoisyClassifierConfig
    base_model_prefix = "classifier"
    main_input_name = "x"

    def __init__(self, config: NoisyClassifierConfig):
        super().__init__(config)
        c, emb = config.channels, 4 * config.channels
        self.time = nn.Sequential(nn.Linear(config.time_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.blocks = nn.ModuleList([
            ResBlock(c, c, emb, 0.0), nn.Conv2d(c, c, 3, stride=2, padding=1),  # 8 -> 4
            ResBlock(c, 2 * c, emb, 0.0), nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),  # 4 -> 2
            ResBlock(2 * c, 2 * c, emb, 0.0),
        ])
        self.head = nn.Sequential(
            _norm(2 * c), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, config.num_classes)
        )
        self.post_init()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = nn.functional.silu(self.time(timestep_embedding(t, self.config.time_dim)))  # (B, 4c)
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
