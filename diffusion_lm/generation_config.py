"""Inference defaults saved beside a model: ``generation_config.json``, as transformers does for its models.

Training writes the settings it evaluated with; ``DiffusionLMPipeline`` reads them and every call may
override any of them. The model's ``config.json`` describes the network only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_NAME = "generation_config.json"


@dataclass
class GenerationConfig:
    """How a text model samples by default.

    Args:
        num_steps: sampler steps (model evaluations for the first-order samplers).
        method: any core sampler; ``ddim`` with ``eta`` is Algorithm 2 (126)-(130).
        eta: DDIM noise in [0, 1] (``ddim`` only): 0 is the deterministic rollout, 1 DDPM-like.
        log_snr_offset: Delta >= 0 of the condition-enhanced denoiser (C1): the denoiser is told the state is
            Delta nats of log-SNR noisier than it is, so it weighs the noisy response less against the prompt
            (DINOISER's CEDI). 0 is the plain sampler; 2 (the default) and 4 tie on KJV -> WEB, 2 is ahead on g2p.
        temperature: < 1 sharpens an interpolated x0 estimate at every step (I1); 1 leaves it as it is.
        guidance_scale: classifier-free guidance, 1 = off (needs a model trained with prompt dropout).
        clamp: snap every x0 estimate to its nearest table row (Diffusion-LM's clamping).
        pad_boundary: predict the response length at the first step and hold the slots past it at pad (L1).
        block_adjacent_repeats: no slot may round to the token its left neighbour rounds to (pad excepted), at
            every step of an interpolated model's rollout and at the final rounding; for text, where a doubled
            word is a misplaced word, not for data that repeats tokens (sorted lists, digits).
        grid: the time grid (``logsnr``, ``time``, ``karras``, ``warped``); ``None`` picks ``warped`` for a
            time-warped model and ``logsnr`` otherwise.
        order: solver order for ``dpm_solver``, ``dpm_solver++`` and ``unipc``.
        length_candidates: for a length-conditioned model (L2), roll out this many of the most likely lengths and
            keep the response the model rates most likely (k times the work; 1 takes the most likely length and is
            the fast choice). 3 (the default): KJV -> WEB 33.8 -> 36.6 BLEU, g2p 16.5 -> 23.0% exact match at 10
            steps; 5 is within noise of 3 on both.
    """

    num_steps: int = 10
    method: str = "ddim"
    eta: float = 1.0
    log_snr_offset: float = 2.0
    temperature: float = 1.0
    guidance_scale: float = 1.0
    clamp: bool = False
    pad_boundary: bool = False
    block_adjacent_repeats: bool = False
    grid: str | None = None
    order: int | None = None
    length_candidates: int = 3

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first impossible value and the fix."""
        from .core.sampling import SAMPLERS

        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {self.num_steps!r}.")
        if self.method not in SAMPLERS:
            raise ValueError(f"unknown method {self.method!r}; valid choices are: {', '.join(SAMPLERS)}.")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}. Use 0 for the deterministic rollout, 1 for DDPM-like noise.")
        if self.eta != 0.0 and self.method != "ddim":
            raise ValueError(f"eta applies only to method='ddim', not {self.method!r}; set eta=0.")
        if not self.log_snr_offset >= 0:
            raise ValueError(f"log_snr_offset must be >= 0 (0 = the plain denoiser), got {self.log_snr_offset}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (1 = the model's own x0 estimate), got {self.temperature}.")
        if isinstance(self.length_candidates, bool) or not isinstance(self.length_candidates, int) or self.length_candidates < 1:
            raise ValueError(f"length_candidates must be an integer >= 1 (1 = the most likely length), got {self.length_candidates!r}.")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0 (1 = no guidance), got {self.guidance_scale}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, **overrides: Any) -> "GenerationConfig":
        """A copy with the given settings replaced (``None`` values keep the current ones)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown generation setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}.")
        given = {k: v for k, v in overrides.items() if v is not None}
        if "method" in given and given["method"] != "ddim" and "eta" not in given:
            given["eta"] = 0.0  # eta is DDIM's own; another sampler asked for by name runs without it
        return dataclasses.replace(self, **given)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``generation_config.json`` into ``folder`` (through a temporary file)."""
        from .common.atomic import write_json_atomic

        return write_json_atomic(Path(folder) / FILE_NAME, self.to_dict())

    @classmethod
    def load(cls, folder: str | os.PathLike, legacy: dict[str, Any] | None = None) -> "GenerationConfig":
        """Read ``folder/generation_config.json``; without one, the defaults (plus ``legacy`` settings)."""
        path = Path(folder) / FILE_NAME
        if not path.exists():
            return cls(**(legacy or {}))
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); re-save the model or delete the file to use the defaults.") from err
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
