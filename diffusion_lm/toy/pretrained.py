"""The 2D toy denoiser as a transformers model (``common.pretrained.SmallPreTrainedModel``: a JSON config and
safetensors weights, saved atomically), with the schedule and prediction kind it was trained for in its
config, so a loaded model samples as is."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from transformers import PretrainedConfig

from ..common.pretrained import SmallPreTrainedModel, check_diffusion_fields, check_sizes
from ..core.schedules import VPSchedule
from .mlp import ToyMLP


class ToyDenoiserConfig(PretrainedConfig):
    """Configuration of :class:`ToyDenoiser`.

    Args:
        dim: data dimension (2 for the toy distributions).
        hidden, layers, time_dim: width, residual blocks and time-embedding size of the MLP.
        prediction: what the network outputs (``eps``, ``x0``, ``v``, ``score`` or ``velocity``).
        schedule: the core schedule it was trained with, as ``Schedule.config()``; default VP linear.
        dataset: name of the training distribution, for the record.
        loss: ``dsm``, ``ssm`` or ``flow``, for the record.
    """

    model_type = "diffusion-lm-toy"

    def __init__(self, dim: int = 2, hidden: int = 256, layers: int = 3, time_dim: int = 64, prediction: str = "eps",
                 schedule: dict[str, Any] | None = None, dataset: str | None = None, loss: str = "dsm", **kwargs: Any):
        self.dim, self.hidden, self.layers, self.time_dim = dim, hidden, layers, time_dim
        self.prediction = prediction
        self.schedule = dict(schedule) if schedule is not None else VPSchedule.linear().config()
        self.dataset = dataset
        self.loss = loss
        super().__init__(**kwargs)
        check_sizes(self, "dim", "hidden", "layers", "time_dim")
        check_diffusion_fields(self)


class ToyDenoiser(SmallPreTrainedModel):
    """``model(x, t) -> prediction`` for x (B, dim) and t (B,): :class:`ToyMLP` with its diffusion settings."""

    config_class = ToyDenoiserConfig
    base_model_prefix = "toy"

    def __init__(self, config: ToyDenoiserConfig):
        super().__init__(config)
        self.net = ToyMLP(config.dim, config.hidden, config.layers, config.time_dim)
        self.post_init()

    @property
    def prediction(self) -> str:
        return self.config.prediction

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(x, t)
