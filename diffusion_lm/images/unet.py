"""A small class-conditional U-Net for 8x8 images: ``model(x, t, labels) -> prediction``.

Three resolutions (8x8 -> 4x4 -> 2x2 and back, DDPM's layout) of residual blocks with GroupNorm and a FiLM
(scale, shift) conditioning on the embedding of t (sinusoidal, as ``ToyMLP``) plus the embedding of
the label. Label ``num_classes`` is the null label of classifier-free guidance (58)-(62).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PretrainedConfig

from ..common.layers import timestep_embedding
from ..common.pretrained import SmallPreTrainedModel, check_diffusion_fields, check_sizes
from ..core.schedules import VPSchedule
from .digits import NUM_CLASSES


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """``x + conv(act(FiLM(norm(conv(act(norm(x)))), emb)))``, with a 1x1 skip when channels change."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # (B, C, H, W)
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(nn.functional.silu(h)))
        return self.skip(x) + h


def widths(channels: int) -> tuple[int, int, int]:
    """The widths at 8x8, 4x4 and 2x2."""
    return channels, 2 * channels, 2 * channels


def encoder(channels: int, blocks: int, emb_dim: int, dropout: float) -> tuple[nn.ModuleList, list[int]]:
    """The way down, 8x8 -> 4x4 -> 2x2: ``blocks`` ResBlocks at each resolution, a stride-2 conv halving H and W
    between; with the widths of its input and of every layer's output (the U-Net's skips)."""
    down, skips, width = nn.ModuleList(), [channels], channels
    levels = widths(channels)
    for level, w in enumerate(levels):
        for _ in range(blocks):
            down.append(ResBlock(width, w, emb_dim, dropout))
            width = w
            skips.append(width)
        if level < len(levels) - 1:
            down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
            skips.append(width)
    return down, skips


class DigitsNetwork(SmallPreTrainedModel):
    """Base of the 8x8 networks (:class:`DigitsUNet` and the noisy classifier): ``time`` embeds t (its sinusoidal
    features through Linear-SiLU-Linear to width 4 * channels); a subclass adds its layers in ``build_layers``."""

    main_input_name = "x"

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        emb = 4 * config.channels
        self.time = nn.Sequential(nn.Linear(config.time_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.build_layers(config, emb)
        self.post_init()

    def build_layers(self, config: PretrainedConfig, emb: int) -> None:
        """Add the layers after ``time``, in the order their weights are drawn; ``emb`` is the embedding width."""
        raise NotImplementedError

    def embed_time(self, t: Tensor) -> Tensor:
        return self.time(timestep_embedding(t, self.config.time_dim))  # (B, 4c)


class DigitsUNetConfig(PretrainedConfig):
    """Configuration of :class:`DigitsUNet`.

    Args:
        channels: width at 8x8; twice that at 4x4 and 2x2.
        blocks: residual blocks per resolution on the way down (one more on the way up).
        time_dim: size of the sinusoidal embedding of t.
        num_classes: labels 0..num_classes-1; label ``num_classes`` is the null (unconditional) label.
        label_dropout: probability of the null label in training (classifier-free guidance), for the record.
        dropout: dropout inside the residual blocks.
        prediction, schedule: what the network outputs and the core schedule it is trained with.
    """

    model_type = "diffusion-lm-digits-unet"

    def __init__(self, channels: int = 32, blocks: int = 1, time_dim: int = 64, num_classes: int = NUM_CLASSES,
                 label_dropout: float = 0.1, dropout: float = 0.0, prediction: str = "eps",
                 schedule: dict[str, Any] | None = None, **kwargs: Any):
        self.channels, self.blocks, self.time_dim = channels, blocks, time_dim
        self.num_classes, self.label_dropout, self.dropout = num_classes, label_dropout, dropout
        self.prediction = prediction
        self.schedule = dict(schedule) if schedule is not None else VPSchedule.cosine().config()
        super().__init__(**kwargs)
        check_sizes(self, "channels", "blocks", "time_dim", "num_classes")
        for name in ("label_dropout", "dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}.")
        check_diffusion_fields(self)


class DigitsUNet(DigitsNetwork):
    """``model(x (B, 1, 8, 8), t (B,), labels (B,)) -> prediction`` shaped like x."""

    config_class = DigitsUNetConfig
    base_model_prefix = "unet"

    def build_layers(self, config: DigitsUNetConfig, emb: int) -> None:
        """The label embedding, then the way down (``encoder``), the middle and the way back up."""
        drop = config.dropout
        self.label = nn.Embedding(config.num_classes + 1, emb)
        self.inp = nn.Conv2d(1, config.channels, 3, padding=1)
        self.down, skips = encoder(config.channels, config.blocks, emb, drop)
        self.up, width = nn.ModuleList(), skips[-1]
        self.mid = nn.ModuleList([ResBlock(width, width, emb, drop), ResBlock(width, width, emb, drop)])
        for level, w in reversed(list(enumerate(widths(config.channels)))):
            for _ in range(config.blocks + 1):
                self.up.append(ResBlock(width + skips.pop(), w, emb, drop))
                width = w
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(_norm(width), nn.SiLU(), nn.Conv2d(width, 1, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @property
    def prediction(self) -> str:
        return self.config.prediction

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        if labels.shape != (x.shape[0],) or labels.min() < 0 or labels.max() > self.null_label:
            raise ValueError(f"labels must be (B,) integers in [0, {self.null_label}] ({self.null_label} = no label).")
        emb = nn.functional.silu(self.embed_time(t) + self.label(labels))  # (B, 4c)
        h = self.inp(x.float())  # (B, c, 8, 8)
        hs = [h]
        for layer in self.down:  # (B, c, 8, 8) -> (B, 2c, 2, 2), keeping every output as a skip
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:  # back to (B, c, 8, 8), each block taking the matching skip
            h = layer(torch.cat([h, hs.pop()], 1), emb) if isinstance(layer, ResBlock) else layer(h)
        return self.out(h).to(x.dtype)

    def conditional(self, labels: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """The core's ``model(x, t)`` for fixed labels (B,); pass the null label for the unconditional model."""
        return lambda x, t: self(x, t, labels.to(x.device))

    def unconditional(self, batch: int) -> Callable[[Tensor, Tensor], Tensor]:
        return self.conditional(torch.full((batch,), self.null_label, dtype=torch.int64))
