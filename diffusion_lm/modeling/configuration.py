"""``DiffusionLMConfig``: everything that defines a prompt-response embedding diffusion model (THEORY section 8)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from ..core.losses import TIME_SAMPLINGS
from ..core.schedules import schedule_from_config

POSITION_EMBEDDINGS = ("rotary", "learned")
ROUNDING = ("dot", "neg_sq_dist")
X0_PARAMETERIZATIONS = ("direct", "interpolated")
RESPONSE_POSITIONS = ("after_prompt", "aligned")
PROMPT_ATTENTION = ("joint", "cached")
EMBEDDING_NORMALIZATIONS = ("none", "l2", "layernorm")
SELF_CONDITIONING_SOURCES = ("same_t", "noisier", "rounded", "glancing")

CHOICES = {  # the fields that take one of a few values, and those values
    "position_embedding": POSITION_EMBEDDINGS,
    "response_positions": RESPONSE_POSITIONS,
    "prompt_attention": PROMPT_ATTENTION,
    "embedding_normalization": EMBEDDING_NORMALIZATIONS,
    "t_sampling": TIME_SAMPLINGS,
    "rounding": ROUNDING,
    "x0_parameterization": X0_PARAMETERIZATIONS,
    "self_conditioning_source": SELF_CONDITIONING_SOURCES,
}
POSITIVE = (  # the fields that must be numbers > 0
    "vocab_size", "embedding_dim", "embedding_scale", "hidden_size", "num_layers", "num_heads", "mlp_ratio",
    "max_prompt_length", "max_response_length", "rounding_temperature", "rollout_temperature", "length_layers",
)


class DiffusionLMConfig(PretrainedConfig):
    """Configuration of :class:`DiffusionLMModel`.

    Args:
        vocab_size: rows of the frozen embedding table E (the tokenizer's vocabulary).
        embedding_dim: D, the width of E; the diffusion runs in this space.
        embedding_source: ``"random"`` (unit-RMS Gaussian rows) or the name/path of a Hugging Face
            encoder whose input-embedding matrix becomes E (its tokenizer then comes with it).
        embedding_scale: sigma_E = RMS(E), set when the table is built; noise is drawn at this scale (118), (125).
        embedding_normalization: applied to an encoder's table once when it is built: ``none``, ``l2`` (every row
            scaled to the same norm, as Plaid) or ``layernorm`` (every row centred and scaled, as Difformer).
        encoder_init: the denoiser is the ``embedding_source`` encoder itself, its pretrained layers fine-tuned
            (TESS); hidden_size, num_layers and num_heads then come from that encoder.
        encoder_config: the encoder's architecture (written by ``build_model``; the weights live in the checkpoint).
        pad_token_id: the token that pads responses; the model learns to emit it.
        hidden_size, num_layers, num_heads, mlp_ratio, dropout: the transformer denoiser (120).
        max_prompt_length, max_response_length: m and n, the prompt and response slots.
        position_embedding: ``rotary`` or ``learned``.
        prompt_attention: ``joint`` (every slot attends to every slot, all modulated by t) or ``cached``
            (prompt slots attend only to the prompt and are modulated by a learned constant instead of t, so
            their keys and values are computed once per generation and reused at every step).
        response_positions: where response slot j sits: ``after_prompt`` (position max_prompt_length + j) or
            ``aligned`` (position j, the same as prompt slot j; the segment embedding tells them apart), so that
            copying a prompt token to the same slot is attention at relative offset 0.
        schedule: a core schedule as plain data (``Schedule.config()``); default: the sqrt schedule.
        t_eps: training times are drawn from [t_eps, 1].
        t_sampling: ``uniform`` or ``importance`` (pi(t) proportional to g^2/sigma^2, reweighted by 1/pi).
        lambda_x0, lambda_round: weights of the x0 regression (122) and rounding (123) losses (124).
        rounding: rounding logits (121) as ``dot`` products with E or ``neg_sq_dist`` (negative squared distances).
        rounding_temperature: logits are divided by this.
        x0_parameterization: ``direct`` (the network's output is x0_hat) or ``interpolated``
            (x0_hat = softmax(rounding logits) @ E, CDCD's score interpolation (I1): the estimate stays in
            the table's convex hull and the rounding loss trains the same output that sampling reads).
        time_warping: draw training t, and sampling grids, from the learnt warp (W1) (CDCD time warping)
            instead of uniformly: effort goes to the noise levels where the rounding loss changes.
        self_conditioning: feed the previous x0 prediction back to the denoiser (trained half the time).
        self_conditioning_source: what training feeds back: ``same_t`` (the estimate at the same z_t, SED/CDCD),
            ``noisier`` (the estimate from a noisier z_t' of the same response, t' - t ~ U(0, 0.1), as the previous
            sampler step would give; FastDiSS), ``rounded`` (the embedding of the rounded estimate) or ``glancing``
            (the estimate at z_t with half as many of its wrong slots as it got wrong replaced by the true
            embeddings, GLAT's glancing (G1): the model learns to place the remaining words around known ones).
        rollout_training: the share of training examples whose noisy state is the one a deterministic sampler
            step reaches from the model's own estimate at a noisier t' (R1), instead of (118): the model learns to
            correct its own estimates, as rollouts need (step-unrolled denoising, SUNDAE). With self-conditioning
            the same estimate is what is fed back.
        rollout_temperature: the temperature of the interpolated x0 estimate in rollouts: training's (R1) states and
            noisier self-conditioning use it, and generation uses it unless told otherwise. Below 1 the estimate
            leans to its most likely rows, so rollout states look like the (118) states the denoiser was trained on.
        prompt_dropout: probability of dropping the prompt in training; > 0 enables classifier-free guidance.
        length_prediction: predict the response length n from the prompt and condition the denoiser on it (L2):
            a classifier of its own (``length_layers`` transformer layers over the prompt) is trained with
            cross-entropy on the true n, and every response slot j >= n carries a learned "past the end" marker, so
            the denoiser fills exactly n slots (Mask-Predict, Difformer, DINOISER). Sampling gives it the predicted n.
        length_layers: the length classifier's transformer layers.
        length_relative: the length classifier also scores the offset n - m of the response's length from the
            prompt's (L3), so a prompt of a rare length (a 3-token verse) still gets a response of a length near
            its own where the data says so; the absolute score of n stays for tasks whose lengths do not follow.
        tokenizer_fingerprint: hash of the tokenizer's vocabulary, checked when model and tokenizer meet.
    """

    model_type = "diffusion-lm"

    def __init__(
        self,
        vocab_size: int = 1000, embedding_dim: int = 64, embedding_source: str = "random", embedding_scale: float = 1.0,
        embedding_normalization: str = "none", encoder_init: bool = False, encoder_config: dict[str, Any] | None = None,
        pad_token_id: int = 0,
        hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0,
        max_prompt_length: int = 32, max_response_length: int = 32,
        position_embedding: str = "rotary", response_positions: str = "after_prompt", prompt_attention: str = "joint",
        schedule: dict[str, Any] | None = None, t_eps: float = 1e-3, t_sampling: str = "uniform",
        lambda_x0: float = 1.0, lambda_round: float = 1.0,
        rounding: str = "dot", rounding_temperature: float = 1.0, x0_parameterization: str = "interpolated",
        time_warping: bool = True, self_conditioning: bool = True, self_conditioning_source: str = "same_t",
        rollout_training: float = 0.0, rollout_temperature: float = 1.0, prompt_dropout: float = 0.0,
        length_prediction: bool = True, length_layers: int = 2, length_relative: bool = False,
        tokenizer_fingerprint: str | None = None,
        **kwargs: Any,
    ):
        # Every argument is a field of the same name; pad_token_id and kwargs go to the base class.
        fields = {k: v for k, v in dict(locals()).items() if k not in ("self", "pad_token_id", "kwargs", "__class__")}
        fields.update(
            encoder_init=bool(encoder_init),
            encoder_config=dict(encoder_config) if encoder_config is not None else None,
            schedule=dict(schedule) if schedule is not None else {"type": "vp", "profile": "sqrt", "s": 1e-4},
            time_warping=bool(time_warping),
            length_prediction=bool(length_prediction),
            length_relative=bool(length_relative),
        )
        for name, value in fields.items():
            setattr(self, name, value)
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first impossible value."""
        for name in POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"DiffusionLMConfig.{name} must be > 0, got {value!r}.")
        for name, valid in CHOICES.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {getattr(self, name)!r}.")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads}) "
                "with an even head size (rotary embeddings rotate pairs of channels)."
            )
        if self.encoder_init and self.embedding_source == "random":
            raise ValueError("encoder_init fine-tunes the embedding_source encoder: set embedding_source to an encoder's "
                             "name or folder (its table is what the encoder reads).")
        if self.encoder_init and self.embedding_normalization != "none":
            raise ValueError("encoder_init reads the encoder's own table: leave embedding_normalization at 'none'.")
        if self.prompt_attention == "cached" and self.encoder_init:
            raise ValueError("prompt_attention='cached' is a DiffusionTransformer option; an encoder_init denoiser attends jointly.")
        if self.time_warping and self.t_sampling != "uniform":
            raise ValueError("time_warping draws t from its own learnt density; leave t_sampling at 'uniform'.")
        if not 0.0 <= self.rollout_training <= 1.0:
            raise ValueError(f"rollout_training must lie in [0, 1], got {self.rollout_training}.")
        for name in ("dropout", "prompt_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}.")
        if not 0.0 <= self.t_eps < 1.0:
            raise ValueError(f"t_eps must lie in [0, 1), got {self.t_eps}.")
        if self.lambda_x0 < 0 or self.lambda_round < 0 or self.lambda_x0 + self.lambda_round == 0:
            raise ValueError("lambda_x0 and lambda_round must be >= 0 and not both 0.")
        if self.pad_token_id is None or not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be a token id in [0, {self.vocab_size}), got {self.pad_token_id}.")
        schedule_from_config(self.schedule)

    def build_schedule(self):
        """The core schedule described by ``self.schedule``."""
        return schedule_from_config(self.schedule)
