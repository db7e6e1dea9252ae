"""What training minimises, apart from the network it trains: the weights of (124), the time range, the dropouts.

``DiffusionLMConfig.objective`` holds these as plain data (saved in config.json); ``TrainingObjective`` is its
typed, checked form.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingObjective:
    """The training loss of Algorithm 1.

    Args:
        lambda_x0, lambda_round: weights of the x0 regression (122) and the rounding cross-entropy (123) in (124).
        t_eps: training times are drawn from [t_eps, 1]; sampling ends there unless its ``t_end`` says otherwise.
        prompt_dropout: probability of dropping the prompt, so that the same weights also learn p(response):
            > 0 enables classifier-free guidance (62).
        self_conditioning_rate: for a self-conditioning network, the share of examples fed the network's own
            (detached) estimate at the same state, as sampling feeds the previous step's; the rest are fed zeros.
        hold_length: for a ``length_prediction`` model, train on the rounding sampling uses (H1): the slots past each
            response's length are held at pad (their estimate the pad row, their loss 0) and pad is barred before
            it, and (122), (123) are means over the written slots. Unset (None), ``DiffusionLMConfig`` turns it on
            wherever the model has a length classifier.
    """

    lambda_x0: float = 1.0
    lambda_round: float = 1.0
    t_eps: float = 1e-3
    prompt_dropout: float = 0.0
    self_conditioning_rate: float = 0.5
    hold_length: bool | None = None

    def __post_init__(self) -> None:
        if self.lambda_x0 < 0 or self.lambda_round < 0 or self.lambda_x0 + self.lambda_round == 0:
            raise ValueError("lambda_x0 and lambda_round must be >= 0 and not both 0.")
        if not 0.0 <= self.t_eps < 1.0:
            raise ValueError(f"t_eps must lie in [0, 1), got {self.t_eps}.")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f"prompt_dropout must lie in [0, 1), got {self.prompt_dropout}.")
        if self.hold_length not in (None, True, False):
            raise ValueError(f"hold_length must be true, false or unset, got {self.hold_length!r}.")
        if not 0.0 <= self.self_conditioning_rate <= 1.0:
            raise ValueError(f"self_conditioning_rate must lie in [0, 1], got {self.self_conditioning_rate}.")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TrainingObjective":
        """From plain data, refusing unknown keys with the list of valid ones."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.fields()))
        if unknown:
            raise ValueError(f"unknown objective setting(s) {', '.join(unknown)}; valid: {', '.join(cls.fields())}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
