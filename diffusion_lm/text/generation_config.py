"""``GenerationConfig``: how a text model samples, saved beside it as ``generation_config.json`` (as transformers does).

It is the one source of sampling settings: training writes the settings it evaluated with, the pipeline reads
them, and every call may override any of them by name. The model's own config.json describes the trained network
(its time range, its learnt time warp, whether it learnt an unconditional model); sampling reads nothing else there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

FILE_NAME = "generation_config.json"
GRIDS = ("warped", "logsnr", "time", "karras")
logger = logging.getLogger(__name__)
# Core samplers measured to fall below one x0 prediction on a text model (docs/options.md, "Samplers for text"): word
# salad (bench/text_samplers.py on the demo model, 100 test verses, where one x0 prediction scores 41.7 BLEU), minutes
# per batch (rk45), or, for euler, below it at 10 steps on the small verse model of tests/test_text_steps.py. A text
# model's generation config refuses them and names the ones to use. They stay in the core.
REFUSED_FOR_TEXT = {
    "heun": "0.3 / 0.7 BLEU at 10 / 20 steps on the demo model, where one x0 prediction scores 41.7",
    "euler_maruyama": "0.3 / 6.3 BLEU at 10 / 20 steps on the demo model, where one x0 prediction scores 41.7",
    "langevin": "1.1 / 6.6 BLEU at 10 / 20 steps on the demo model, where one x0 prediction scores 41.7",
    "pc": "0.5 / 19.4 BLEU at 10 / 20 steps on the demo model, where one x0 prediction scores 41.7",
    "rk45": "an adaptive solver that took minutes for 100 verses",
    # there ddim at eta 0, the same ODE in exponential-integrator steps, scores 3-5 chrF higher (seeds 0, 1)
    "euler": "36.3 / 37.7 chrF at 10 / 20 steps on a small verse model, where one x0 prediction scores 38.2",
}


def text_samplers() -> list[str]:
    """The samplers a text model's generation config accepts: every core sampler but the refused ones."""
    from ..core.sampling import SAMPLERS

    return [name for name in SAMPLERS if name not in REFUSED_FOR_TEXT]


@dataclass
class GenerationConfig:
    """How a text model samples by default.

    Args:
        num_steps: sampler steps (model evaluations for the first-order samplers); 4, the fewest within a BLEU of 10
            (docs/options.md).
        method: the sampler: a core sampler that holds quality on text (``text_samplers()``); ``ddim`` with ``eta`` is
            Algorithm 2 (126)-(130).
        eta: DDIM's noise in [0, 1]: 0 is the deterministic rollout, 1 DDPM-like. Only ``ddim`` reads it.
        log_snr_offset: Delta >= 0 of the condition-enhanced denoiser (C1): the denoiser is told the state is
            Delta nats of log-SNR noisier than it is, so it weighs the noisy response less against the prompt
            (DINOISER's CEDI). 0 is the plain sampler. 3 (the default) and 2 tie on a model without learnt logits;
            with them (O1) 3 is +1.4 BLEU on KJV -> WEB (docs/benchmarks.md, "Learnt logits").
        temperature: < 1 sharpens the interpolated x0 estimate at every step (I1); 1 leaves it as it is. 0.5 (the
            default) won wherever it was measured: +2.3 BLEU on KJV -> WEB validation verses, +0.2 to +1 point on g2p.
        guidance_scale: classifier-free guidance (62), 1 = off (needs a model trained with prompt dropout).
        clamp: snap every x0 estimate to its nearest table row (Diffusion-LM's clamping).
        block_adjacent_repeats: no slot may round to the token its left neighbour rounds to (pad excepted), at
            every step and at the final rounding (B1); for text, where a doubled word is a misplaced word, not for
            data that repeats tokens (sorted lists, digits).
        grid: the time grid (``logsnr``, ``time``, ``karras``, ``warped``, or a decreasing tensor of times); ``None``
            is ``warped`` for a model that learnt a time warp (W1), ``logsnr`` otherwise.
        order: solver order for ``dpm_solver``, ``dpm_solver++`` and ``unipc`` (None: the sampler's default).
        length_candidates: for a length-conditioned model (L2), roll out this many of the most likely lengths and
            keep the response the model rates most likely (k times the work; 1 takes the most likely length).
        length_candidate_ratio: a candidate after the first is rolled out only where the length classifier rates it
            at least this fraction as likely as the most likely length (L2): prompts whose length is clear get one
            rollout; 0 rolls out all k.
        refine_iterations: after the rollout, re-write the least confident slots this many times (M1, Mask-Predict's
            iterations on the x0 estimate): iteration i of R holds the (R - i) / (R + 1) most confident share of
            the slots as given and rolls the rest out again around them; 0 = off.
        refine_steps: sampler steps of each refinement rollout (each iteration costs this many evaluations).
        t_end: where the rollout ends; ``None`` is the lowest noise level the network was trained on (``t_eps``).
        num_samples: responses drawn per prompt.
        mbr: with ``num_samples`` > 1, return the minimum-Bayes-risk sample (the highest mean BLEU against the
            others, DiffuSeq) instead of the first.
    """

    num_steps: int = 4
    method: str = "ddim"
    eta: float = 1.0
    log_snr_offset: float = 3.0
    temperature: float = 0.5
    guidance_scale: float = 1.0
    clamp: bool = False
    block_adjacent_repeats: bool = False
    grid: str | Tensor | None = None
    order: int | None = None
    length_candidates: int = 3
    length_candidate_ratio: float = 0.05
    refine_iterations: int = 0
    refine_steps: int = 4
    t_end: float | None = None
    num_samples: int = 1
    mbr: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings, in order: the valid keys of ``updated``, the pipeline's overrides and
        generation_config.json."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Each setting's line of help, read from this class's docstring (what the CLI and the app show)."""
        help_of, current = {}, None
        for line in (cls.__doc__ or "").split("Args:", 1)[-1].splitlines():
            head, sep, text = line.strip().partition(": ")
            names = [n.strip() for n in head.split(",")]
            if sep and all(n in cls.names() for n in names):
                current = names
                for n in names:
                    help_of[n] = text
            elif current and line.strip():
                for n in current:
                    help_of[n] += " " + line.strip()
        return help_of

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first impossible value and the fix."""
        from ..core.sampling import SAMPLERS

        for name in ("num_steps", "length_candidates", "num_samples", "refine_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        refine = self.refine_iterations
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise ValueError(f"refine_iterations must be an integer >= 0 (0 = off), got {self.refine_iterations!r}.")
        if self.method in REFUSED_FOR_TEXT:
            raise ValueError(f"method={self.method!r} does not hold quality on the text model "
                             f"({REFUSED_FOR_TEXT[self.method]}); use one of {', '.join(text_samplers())} "
                             "(ddim is Algorithm 2; docs/options.md compares them).")
        if self.method not in SAMPLERS:
            raise ValueError(f"unknown method {self.method!r}; valid choices are: {', '.join(text_samplers())}.")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}. Use 0 for the deterministic rollout, 1 for "
                             "DDPM-like noise.")
        if not self.log_snr_offset >= 0:
            raise ValueError(f"log_snr_offset must be >= 0 (0 = the plain denoiser), got {self.log_snr_offset}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (1 = the model's own x0 estimate), got {self.temperature}.")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0 (1 = no guidance), got {self.guidance_scale}.")
        if not 0.0 <= self.length_candidate_ratio <= 1.0:
            raise ValueError(f"length_candidate_ratio must lie in [0, 1] (0 = roll out every candidate), got "
                             f"{self.length_candidate_ratio}.")
        if self.t_end is not None and not 0.0 <= self.t_end < 1.0:
            raise ValueError(f"t_end must lie in [0, 1) (None = the model's t_eps), got {self.t_end}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, **overrides: Any) -> "GenerationConfig":
        """A checked copy with the given settings replaced (``None`` values keep the current ones)."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown generation setting(s) {', '.join(unknown)}; valid: {', '.join(self.names())}.")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``generation_config.json`` into ``folder`` (through a temporary file)."""
        from ..common.atomic import write_json_atomic

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
            raise ValueError(f"{path} is not valid JSON ({err}); re-save the model or delete the file to use the "
                             "defaults.") from err
        if data.get("pad_boundary"):
            logger.warning("%s asks for pad_boundary, a setting that was removed (length-conditioned models decide "
                           "their length first); sampling without it.", path)
        return cls(**{k: v for k, v in data.items() if k in cls.names()})
