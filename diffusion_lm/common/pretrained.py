"""The small models' transformers base: a JSON config and safetensors weights, saved atomically."""

from __future__ import annotations

import os
from typing import Any

from transformers import PretrainedConfig, PreTrainedModel

from ..core.checks import check_positive_int
from ..core.parameterization import PREDICTIONS
from ..core.schedules import Schedule, schedule_from_config
from .atomic import staged_directory


class SmallPreTrainedModel(PreTrainedModel):
    """Base of the small models: modules initialise themselves; ``save_pretrained`` is atomic."""

    def _init_weights(self, module) -> None:
        """Keep PyTorch's default initialisation (each module sets its own in ``__init__``)."""

    @property
    def schedule(self) -> Schedule:
        """The noise schedule the model was trained with (its config's ``schedule``)."""
        return schedule_from_config(self.config.schedule)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """``PreTrainedModel.save_pretrained`` into a temporary sibling directory, renamed into place."""
        if kwargs.get("push_to_hub"):
            return super().save_pretrained(save_directory, **kwargs)
        with staged_directory(save_directory) as staging:
            super().save_pretrained(staging, **kwargs)


def check_diffusion_fields(config: PretrainedConfig) -> None:
    """``prediction`` and ``schedule`` of a denoiser config, checked."""
    if config.prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {config.prediction!r}.")
    schedule_from_config(config.schedule)


def check_sizes(config: PretrainedConfig, *names: str) -> None:
    """The named fields of ``config`` integers >= 1, and its ``time_dim`` (the size of the sinusoidal embedding
    of t) even."""
    for name in names:
        check_positive_int(getattr(config, name), f"{type(config).__name__}.{name}")
    if config.time_dim % 2:
        raise ValueError(f"time_dim must be even (cosine and sine halves), got {config.time_dim}.")
