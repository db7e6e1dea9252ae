"""``DiffusionLMConfig``: the network of a prompt-response embedding diffusion model (THEORY section 8), and the
objective it is trained with as a group of its own (``objective``)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from ..core.schedules import schedule_from_config
from .objective import TrainingObjective

POSITION_EMBEDDINGS = ("rotary", "learned")
PROMPT_ATTENTION = ("joint", "cached", "encoder_decoder")
TIME_MODULATIONS = ("per_block", "shared")
EMBEDDING_NORMALIZATIONS = ("none", "l2", "layernorm")
RESPONSE_POSITIONS = ("after_prompt", "proportional")

CHOICES = {  # the fields that take one of a few values, and those values
    "position_embedding": POSITION_EMBEDDINGS,
    "prompt_attention": PROMPT_ATTENTION,
    "embedding_normalization": EMBEDDING_NORMALIZATIONS,
    "time_modulation": TIME_MODULATIONS,
    "response_positions": RESPONSE_POSITIONS,
}
POSITIVE = (  # the fields that must be numbers > 0
    "vocab_size", "embedding_dim", "embedding_scale", "hidden_size", "num_layers", "num_heads", "mlp_ratio",
    "max_prompt_length", "max_response_length", "rounding_temperature", "length_layers",
)
# Options measured and removed (docs/benchmarks.md keeps their results), with the one value they may still carry in
# a checkpoint's config.json: the behaviour every model now has.
REMOVED = {
    "rounding": "dot", "x0_parameterization": "interpolated",
    "self_conditioning_source": "same_t", "rollout_training": 0.0, "rollout_temperature": 1.0, "t_sampling": "uniform",
}

# Options added with a default other than their old behaviour, and that old behaviour: a config.json saved before
# the option existed loads with it, so its weights still fit.
PREDATES = {"length_fertility": False, "time_modulation": "per_block", "response_positions": "after_prompt",
            "learned_logits": False, "belief_self_conditioning": False, "prompt_attention": "joint"}

# (O1) learnt logits, unset, are on up to this vocabulary: every measured win was below it (g2p 97 tokens, inflect),
# every loss above (KJV -> WEB at 1000 and 4000 tokens; docs/benchmarks.md, "Learnt logits")
LEARNED_LOGITS_MAX_VOCAB = 512


class DiffusionLMConfig(PretrainedConfig):
    """Configuration of :class:`DiffusionLMModel`: what the network is, and (``objective``) how it is trained.

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
        response_positions: where the response slots sit for the rotary positions: ``after_prompt`` (slot j at
            P + j, after all P = max_prompt_length prompt slots) or ``proportional`` (P1: the n written slots spread
            over the prompt's own m positions, slot j at P + (j + 1/2) m / n - 1/2, so a response slot is near the
            prompt tokens it comes from wherever the response is longer or shorter than the prompt; the slots past
            the length keep stepping by m / n). ``proportional`` needs ``length_prediction`` and rotary positions
            in a DiffusionTransformer; unset, it is taken wherever those hold, ``after_prompt`` otherwise.
        prompt_attention: unset, ``encoder_decoder`` for a DiffusionTransformer of two or more layers (``joint`` for
            an ``encoder_init`` denoiser or one layer); ``joint`` (every slot attends to every slot, all modulated by
            t) or ``cached``
            (prompt slots attend only to the prompt and are modulated by a learned constant instead of t, so
            their keys and values are computed once per generation and reused at every step), or
            ``encoder_decoder`` (E2, SeqDiffuSeq: ``encoder_layers`` blocks of their own encode the prompt once,
            without t; the other ``num_layers - encoder_layers`` are decoder blocks over the response alone, each
            also cross-attending to the encoded prompt, as a BART of the same depth and width).
        encoder_layers: with ``prompt_attention="encoder_decoder"``, how many of ``num_layers`` encode the prompt;
            unset, half of them (rounded down).
        time_modulation: how t reaches the blocks' adaLN-Zero shifts, scales and gates: ``per_block`` (DiT: each
            block regresses its own 6H values from the time embedding, 6H^2 weights a block) or ``shared`` (T1,
            PixArt-alpha's adaLN-single: one such regression for all blocks, each block adding a learnt offset of
            6H), which leaves those weights to the layers that read the text.
        schedule: a core schedule as plain data (``Schedule.config()``); default: the sqrt schedule.
        rounding_temperature: the rounding logits (121), dot products with E, are divided by this.
        learned_logits: (O1) add a learnt linear map of the denoiser's last hidden state, (H -> V), to the rounding
            logits (121) of its output: logits of full rank over the vocabulary, where dot products with the D-wide
            frozen table span only D of the V dimensions. It starts at zero (the plain model) and leaves the
            estimate the softmax average of the table's rows (I1), so the diffusion is unchanged. Unset, it is
            decided when the model is built: on for a DiffusionTransformer denoiser over a vocabulary of at most
            ``LEARNED_LOGITS_MAX_VOCAB`` tokens, off above (where it wrote frequent words in place of copied ones
            on KJV -> WEB), and off for an ``encoder_init`` one (it rounds through
            its encoder's table).
        time_warping: draw training t, and sampling grids, from the learnt warp (W1) (CDCD time warping)
            instead of uniformly: effort goes to the noise levels where the rounding loss changes.
        self_conditioning: the denoiser also reads a previous x0 estimate (its input is twice as wide).
        belief_self_conditioning: (S2) the self-conditioning input also carries the previous estimate's token
            probabilities softmax(l), through a learnt map (V -> H) that starts at zero: the estimate softmax(l) E
            itself keeps only D of their V dimensions. Needs ``self_conditioning``.
        length_prediction: predict the response length n from the prompt and condition the denoiser on it (L2):
            a classifier of its own (``length_layers`` transformer layers over the prompt) is trained with
            cross-entropy on the true n, and every response slot j >= n carries a learned "past the end" marker, so
            the denoiser fills exactly n slots (Mask-Predict, Difformer, DINOISER).
        length_layers: the length classifier's transformer layers.
        length_relative: the length classifier also scores the offset n - m of the response's length from the
            prompt's (L3), so a prompt of a rare length (a 3-token verse) still gets a response of a length near
            its own where the data says so; the absolute score of n stays for tasks whose lengths do not follow.
        length_fertility: the length classifier also scores n against a count it adds up over the prompt (L4):
            each prompt token i contributes a learned fertility f_i (the response tokens it accounts for), and n
            is scored by a Gaussian log-density around sum_i f_i, whose spread the pooled features set. A mean over
            the prompt (L2) cannot add up; this term can (g2p: phonemes from letters).
        position_noise_skew: w >= 0 of position-dependent noise (A1, AR-Diffusion): response slot j of n is at time
            clip((1 + w) s - w (1 - j / n), t_min, 1) for a global progress s, so earlier slots are cleaner and
            later ones are written knowing them; 0 (every slot at one time) is the plain model. Sampling with it
            runs ``ddim``.
        objective: the training objective (a :class:`TrainingObjective` or its fields as a dict): loss weights,
            time range, prompt dropout, self-conditioning rate.
        tokenizer_fingerprint: hash of the tokenizer's vocabulary, checked when model and tokenizer meet.

    The estimate x0_hat is always the softmax average of the table rows under the rounding logits (I1, CDCD's
    score interpolation); ``docs/options.md`` lists every option with where it wins.
    """

    model_type = "diffusion-lm"

    def __init__(
        self,
        vocab_size: int = 1000, embedding_dim: int = 64, embedding_source: str = "random", embedding_scale: float = 1.0,
        embedding_normalization: str = "none", encoder_init: bool = False, encoder_config: dict[str, Any] | None = None,
        pad_token_id: int = 0,
        hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0,
        max_prompt_length: int = 32, max_response_length: int = 32,
        position_embedding: str = "rotary", response_positions: str | None = None, prompt_attention: str | None = None,
        encoder_layers: int | None = None, time_modulation: str = "per_block",
        schedule: dict[str, Any] | None = None, rounding_temperature: float = 1.0, learned_logits: bool | None = None,
        time_warping: bool = True, self_conditioning: bool = True, belief_self_conditioning: bool = False,
        length_prediction: bool = True, length_layers: int = 2, length_relative: bool = False,
        length_fertility: bool = True,
        position_noise_skew: float = 0.0,
        objective: TrainingObjective | dict[str, Any] | None = None,
        tokenizer_fingerprint: str | None = None,
        **kwargs: Any,
    ):
        # Every argument is a field of the same name; pad_token_id and kwargs go to the base class.
        fields = {k: v for k, v in dict(locals()).items() if k not in ("self", "pad_token_id", "kwargs", "__class__")}
        legacy = {k: kwargs.pop(k) for k in TrainingObjective.fields() if k in kwargs}  # config.json before the group
        _refuse_removed(kwargs)
        if isinstance(objective, TrainingObjective):
            objective = objective.to_dict()
        fields.update(
            encoder_init=bool(encoder_init),
            encoder_config=dict(encoder_config) if encoder_config is not None else None,
            schedule=dict(schedule) if schedule is not None else {"type": "vp", "profile": "sqrt", "s": 1e-4},
            time_warping=bool(time_warping),
            learned_logits=bool(learned_logits) if learned_logits is not None else (False if encoder_init else None),
            belief_self_conditioning=bool(belief_self_conditioning),
            length_prediction=bool(length_prediction),
            length_relative=bool(length_relative),
            length_fertility=bool(length_fertility),
            response_positions=response_positions if response_positions is not None else (
                "proportional" if _places_by_length(length_prediction, position_embedding, encoder_init)
                else "after_prompt"),
            prompt_attention=prompt_attention if prompt_attention is not None else (
                "encoder_decoder" if not encoder_init and num_layers >= 2 else "joint"),
            objective=_resolved(TrainingObjective.from_dict({**legacy, **(objective or {})}), length_prediction),
        )
        for name, value in fields.items():
            setattr(self, name, value)
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate()

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """A saved config.json; the options it predates take the value its model was trained with (``PREDATES``)."""
        objective = dict(config_dict.get("objective") or {})
        objective.setdefault("hold_length", False)  # (H1) is newer than the objective group
        return super().from_dict({**PREDATES, **config_dict, "objective": objective}, **kwargs)

    @property
    def resolved_encoder_layers(self) -> int:
        """(E2) The encoder's blocks: ``encoder_layers``, or half of ``num_layers`` when unset."""
        return self.encoder_layers if self.encoder_layers is not None else self.num_layers // 2

    @property
    def training_objective(self) -> TrainingObjective:
        """``objective`` as a checked :class:`TrainingObjective`."""
        return TrainingObjective.from_dict(self.objective)

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
            raise ValueError("encoder_init fine-tunes the embedding_source encoder: set embedding_source to an "
                             "encoder's name or folder (its table is what the encoder reads).")
        if self.encoder_init and self.embedding_normalization != "none":
            raise ValueError("encoder_init reads the encoder's own table: leave embedding_normalization at 'none'.")
        if self.time_modulation == "shared" and self.encoder_init:
            raise ValueError("time_modulation='shared' is a DiffusionTransformer option; an encoder_init denoiser "
                             "has its own time conditioning: leave it at 'per_block'.")
        if self.learned_logits and self.encoder_init:
            raise ValueError("learned_logits is a DiffusionTransformer option; an encoder_init denoiser rounds "
                             "through its encoder's table: leave it off.")
        if self.belief_self_conditioning and (self.encoder_init or not self.self_conditioning):
            raise ValueError("belief_self_conditioning widens the self-conditioning input of a DiffusionTransformer: "
                             "it needs self_conditioning=True and encoder_init=False.")
        if self.prompt_attention != "joint" and self.encoder_init:
            raise ValueError(f"prompt_attention={self.prompt_attention!r} is a DiffusionTransformer option; an "
                             "encoder_init denoiser attends jointly.")
        if self.prompt_attention == "encoder_decoder" and not (
                isinstance(self.resolved_encoder_layers, int) and 1 <= self.resolved_encoder_layers < self.num_layers):
            raise ValueError(f"prompt_attention='encoder_decoder' splits num_layers ({self.num_layers}) into encoder "
                             f"and decoder blocks: encoder_layers must be an integer in [1, num_layers - 1], got "
                             f"{self.resolved_encoder_layers!r} (num_layers >= 2 needed).")
        if self.response_positions == "proportional" and not _places_by_length(
                self.length_prediction, self.position_embedding, self.encoder_init):
            raise ValueError("response_positions='proportional' places the response by its length on rotary "
                             "positions: it needs length_prediction=True, position_embedding='rotary' and a "
                             "DiffusionTransformer denoiser (encoder_init=False).")
        if not isinstance(self.position_noise_skew, (int, float)) or not self.position_noise_skew >= 0:
            raise ValueError(f"position_noise_skew must be a number >= 0 (0 = every slot at one time), got "
                             f"{self.position_noise_skew!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}.")
        if self.pad_token_id is None or not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be a token id in [0, {self.vocab_size}), got {self.pad_token_id}.")
        if TrainingObjective.from_dict(self.objective).hold_length and not self.length_prediction:
            raise ValueError("objective.hold_length holds the slots past the predicted length at pad: it needs "
                             "length_prediction=True.")
        schedule_from_config(self.schedule)

    def build_schedule(self):
        """The core schedule described by ``self.schedule``."""
        return schedule_from_config(self.schedule)


def _places_by_length(length_prediction: bool, position_embedding: str, encoder_init: bool) -> bool:
    """Whether (P1) applies: a length to place the response by, rotary positions, and a DiffusionTransformer."""
    return bool(length_prediction) and position_embedding == "rotary" and not encoder_init


def _resolved(objective: TrainingObjective, length_prediction: bool) -> dict[str, Any]:
    """The objective as plain data, with the settings left unset decided for this model: ``hold_length`` (H1) on
    wherever there is a length classifier."""
    data = objective.to_dict()
    if data["hold_length"] is None:
        data["hold_length"] = bool(length_prediction)
    return data


def _refuse_removed(kwargs: dict[str, Any]) -> None:
    """Drop the removed options a checkpoint's config.json may carry at the value every model now has; refuse others."""
    for name, kept in REMOVED.items():
        if name in kwargs:
            value = kwargs.pop(name)
            if value != kept:
                raise ValueError(f"{name}={value!r} was an option of diffusion-lm 0.1 that was measured and removed "
                                 f"(docs/benchmarks.md, 'Options removed'); every model now uses {kept!r}. Load this "
                                 "checkpoint with diffusion-lm 0.1, or train it again.")
