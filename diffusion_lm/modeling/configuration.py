"""``DiffusionLMConfig``: everything that defines a prompt-response embedding diffusion model (THEORY section 8)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from ..core.schedules import schedule_from_config

POSITION_EMBEDDINGS = ("rotary", "learned")
ROUNDING = ("dot", "neg_sq_dist")


class DiffusionLMConfig(PretrainedConfig):
    """Configuration of :class:`DiffusionLMModel`.

    Args:
        vocab_size: rows of the frozen embedding table E (the tokenizer's vocabulary).
        embedding_dim: D, the width of E; the diffusion runs in this space.
        embedding_source: ``"random"`` (unit-RMS Gaussian rows) or the name/path of a Hugging Face
            encoder whose input-embedding matrix becomes E (its tokenizer then comes with it).
        embedding_scale: sigma_E = RMS(E), set when the table is built; noise is drawn at this scale (118), (125).
        pad_token_id: the token that pads responses; the model learns to emit it.
        hidden_size, num_layers, num_heads, mlp_ratio, dropout: the transformer denoiser (120).
        max_prompt_length, max_response_length: m and n, the prompt and response slots.
        position_embedding: ``rotary`` or ``learned``.
        schedule: a core schedule as plain data (``Schedule.config()``); default: the sqrt schedule.
        t_eps: training times are drawn from [t_eps, 1].
        t_sampling: ``uniform`` or ``importance`` (pi(t) proportional to g^2/sigma^2, reweighted by 1/pi).
        lambda_x0, lambda_round: weights of the x0 regression (122) and rounding (123) losses (124).
        rounding: rounding logits (121) as ``dot`` products with E or ``neg_sq_dist`` (negative squared distances).
        rounding_temperature: logits are divided by this.
        self_conditioning: feed the previous x0 prediction back to the denoiser (trained half the time).
        prompt_dropout: probability of dropping the prompt in training; > 0 enables classifier-free guidance.
        clamp_at_inference: the pipeline's default for ``clamp`` (training sets it from ``eval.clamp``).
        tokenizer_fingerprint: hash of the tokenizer's vocabulary, checked when model and tokenizer meet.
    """

    model_type = "diffusion-lm"

    def __init__(
        self,
        vocab_size: int = 1000,
        embedding_dim: int = 64,
        embedding_source: str = "random",
        embedding_scale: float = 1.0,
        pad_token_id: int = 0,
        hidden_size: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        max_prompt_length: int = 32,
        max_response_length: int = 32,
        position_embedding: str = "rotary",
        schedule: dict[str, Any] | None = None,
        t_eps: float = 1e-3,
        t_sampling: str = "uniform",
        lambda_x0: float = 1.0,
        lambda_round: float = 1.0,
        rounding: str = "dot",
        rounding_temperature: float = 1.0,
        self_conditioning: bool = False,
        prompt_dropout: float = 0.0,
        clamp_at_inference: bool = False,
        tokenizer_fingerprint: str | None = None,
        **kwargs: Any,
    ):
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.embedding_source = embedding_source
        self.embedding_scale = embedding_scale
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.max_prompt_length = max_prompt_length
        self.max_response_length = max_response_length
        self.position_embedding = position_embedding
        self.schedule = dict(schedule) if schedule is not None else {"type": "vp", "profile": "sqrt", "s": 1e-4}
        self.t_eps = t_eps
        self.t_sampling = t_sampling
        self.lambda_x0 = lambda_x0
        self.lambda_round = lambda_round
        self.rounding = rounding
        self.rounding_temperature = rounding_temperature
        self.self_conditioning = self_conditioning
        self.prompt_dropout = prompt_dropout
        self.clamp_at_inference = bool(clamp_at_inference)
        self.tokenizer_fingerprint = tokenizer_fingerprint
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first impossible value."""
        positive = {
            "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim, "hidden_size": self.hidden_size,
            "num_layers": self.num_layers, "num_heads": self.num_heads, "max_prompt_length": self.max_prompt_length,
            "max_response_length": self.max_response_length, "embedding_scale": self.embedding_scale,
            "rounding_temperature": self.rounding_temperature, "mlp_ratio": self.mlp_ratio,
        }
        for name, value in positive.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"DiffusionLMConfig.{name} must be > 0, got {value!r}.")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads}) "
                "with an even head size (rotary embeddings rotate pairs of channels)."
            )
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding must be one of {POSITION_EMBEDDINGS}, got {self.position_embedding!r}.")
        if self.rounding not in ROUNDING:
            raise ValueError(f"rounding must be one of {ROUNDING}, got {self.rounding!r}.")
        if self.t_sampling not in ("uniform", "importance"):
            raise ValueError(f"t_sampling must be 'uniform' or 'importance', got {self.t_sampling!r}.")
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
