"""``DiffusionLMModel``: the frozen embedding table E, the denoiser, and the training objective (Algorithm 1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ..core.losses import sample_time
from .configuration import LEARNED_LOGITS_MAX_VOCAB, DiffusionLMConfig
from .length import LengthPredictor, past_the_end, response_lengths
from .network import DiffusionTransformer
from .pretrained_denoiser import EncoderDenoiser
from .rollout import hold_length
from .slot_times import slot_fractions, slot_times
from .time_warp import TimeWarp


@dataclass
class DiffusionLMOutput(ModelOutput):
    """Losses of one training step: ``loss`` (124) = lambda_x0 ``loss_x0`` (122) + lambda_round ``loss_round`` (123)
    (+ ``loss_length``, the length classifier's cross-entropy (L2), for a ``length_prediction`` model)."""

    loss: Tensor | None = None
    loss_x0: Tensor | None = None
    loss_round: Tensor | None = None
    x0_pred: Tensor | None = None
    logits: Tensor | None = None
    t: Tensor | None = None
    loss_length: Tensor | None = None


class DiffusionLMModel(PreTrainedModel):
    """Prompt-response embedding diffusion (THEORY section 8).

    The frozen table E (V, D) is a buffer: it is saved with the weights and never seen by an
    optimiser. Internally every embedding is divided by sigma_E = ``config.embedding_scale``, so the
    diffusion runs at unit scale; this is the same as drawing the noise at scale sigma_E (118), (125).

    ``forward`` computes the training loss (Algorithm 1); ``denoise`` is f_theta (120).
    """

    config_class = DiffusionLMConfig
    base_model_prefix = "diffusion_lm"
    main_input_name = "prompt_ids"
    _no_split_modules = ["Block"]

    def __init__(self, config: DiffusionLMConfig, embedding_table: Tensor | None = None):
        super().__init__(config)
        table = torch.zeros(config.vocab_size, config.embedding_dim)
        if embedding_table is not None:
            if tuple(embedding_table.shape) != (config.vocab_size, config.embedding_dim):
                raise ValueError(
                    f"embedding table has shape {tuple(embedding_table.shape)} but the config expects "
                    f"({config.vocab_size}, {config.embedding_dim}); build both with diffusion_lm.build_model."
                )
            table = embedding_table.detach().to(torch.float32).clone()
        self.register_buffer("embedding_table", table, persistent=True)
        if config.learned_logits is None:  # (O1) unset: decided by the vocabulary, now that it is known
            config.learned_logits = config.vocab_size <= LEARNED_LOGITS_MAX_VOCAB
        self.denoiser = EncoderDenoiser(config) if config.encoder_init else DiffusionTransformer(config)
        self.time_warp = TimeWarp(config.training_objective.t_eps) if config.time_warping else None
        self.length_predictor = LengthPredictor(config) if config.length_prediction else None
        self._schedule = None
        self.post_init()

    @property
    def schedule(self):
        """The core noise schedule of ``config.schedule`` (built on first use, outside any meta-device context)."""
        if self._schedule is None:
            self._schedule = self.config.build_schedule()
        return self._schedule

    def _init_weights(self, module) -> None:
        if hasattr(self, "denoiser"):
            self.denoiser.init_module(module)

    def clipping_groups(self) -> list[list[nn.Parameter]]:
        """Trainable parameters in the groups whose gradient norms are clipped apart: the denoiser's, and the length
        classifier's (L2), a separate network with its own loss whose gradients (several times the denoiser's) would
        otherwise scale the denoiser's updates down under one global norm."""
        predictor = self.length_predictor
        length = [p for p in predictor.parameters() if p.requires_grad] if predictor is not None else []
        taken = {id(p) for p in length}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in taken]
        return [group for group in (rest, length) if group]

    def length_logits(self, prompt_ids: Tensor, prompt_mask: Tensor) -> Tensor:
        """(L2) logits of the response length n = 0..max_response_length given the prompt: (B, N + 1)."""
        if self.length_predictor is None:
            raise ValueError("this model does not predict lengths; build it with length_prediction=True.")
        return self.length_predictor(self.embed(prompt_ids), prompt_mask)

    # ------------------------------------------------------------------ embeddings and rounding

    def embed(self, ids: Tensor) -> Tensor:
        """E[ids] / sigma_E (116), (117): (B, L) -> (B, L, D) at unit scale."""
        return F.embedding(ids, self.embedding_table) / self.config.embedding_scale

    def rounding_logits(self, x0: Tensor) -> Tensor:
        """(121): logits of each vocabulary row for x0 (B, N, D) at unit scale -> (B, N, V)."""
        table = self.embedding_table / self.config.embedding_scale  # (V, D)
        logits = x0.to(table.dtype) @ table.T
        if self.config.rounding_temperature == 1.0:
            return logits
        return logits.div_(self.config.rounding_temperature)  # in place: (B, N, V) is a step's largest tensor

    def output_logits(self, out: Tensor) -> Tensor:
        """The rounding logits (..., V) of the denoiser's output (``denoiser_output``): (121) of its first D channels,
        plus (O1) the learnt term that follows them with ``learned_logits``."""
        d = self.config.embedding_dim
        logits = self.rounding_logits(out[..., :d])
        return logits if out.shape[-1] == d else logits + out[..., d:].float()  # (O1)

    @property
    def self_condition_width(self) -> int:
        """The last dimension of ``self_condition_input``: D, plus V with ``belief_self_conditioning`` (S2)."""
        return self.config.embedding_dim + (self.config.vocab_size if self.config.belief_self_conditioning else 0)

    def self_condition_input(self, x0: Tensor, logits: Tensor) -> Tensor:
        """What the next evaluation reads as its self-conditioning input, from an estimate x0 = softmax(l) E (B, N, D)
        and its logits l (B, N, V): x0, followed by softmax(l) with ``belief_self_conditioning`` (S2)."""
        if not self.config.belief_self_conditioning:
            return x0
        return torch.cat([x0, logits.float().softmax(-1).to(x0.dtype)], -1)  # (S2)

    def round(self, x0: Tensor) -> Tensor:
        """Token ids of the rows nearest to x0 under the rounding logits: (B, N, D) -> (B, N)."""
        return self.rounding_logits(x0).argmax(-1)

    def clamp_to_table(self, x0: Tensor) -> Tensor:
        """Replace each x0 vector by its rounded embedding row (Diffusion-LM's clamping trick)."""
        return self.embed(self.round(x0)).to(x0.dtype)

    # ------------------------------------------------------------------ the denoiser and the loss

    def interpolate(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        """(I1) x0_hat = softmax(logits / T) @ E: the expected embedding under the rounding distribution, (B, N, D)."""
        table = self.embedding_table / self.config.embedding_scale
        logits = logits.float()
        return torch.softmax(logits if temperature == 1.0 else logits / temperature, -1) @ table

    def encode_prompt(self, prompt_ids: Tensor, prompt_mask: Tensor):
        """The prompt's keys and values for every layer, computed once per generation (a ``PromptCache``), or None
        for a model whose prompt slots attend jointly (``prompt_attention="joint"``): pass it to ``predict``."""
        if self.config.prompt_attention == "joint":
            return None
        return self.denoiser.encode_prompt(self.embed(prompt_ids), prompt_mask)

    def denoiser_output(
        self, prompt_ids: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None, *,
        past: Tensor | None = None, prompt_cache=None,
    ) -> Tensor:
        """The transformer's own output (B, N, D) at unit scale, before rounding ((B, N, D + V) with the learnt logit
        term of ``learned_logits``, O1): what ``output_logits`` reads (121) and ``predict`` interpolates (I1).
        Arguments as ``predict`` takes them."""
        own = {"past": past} if self.length_predictor is not None else {}
        if prompt_cache is not None:
            return self.denoiser(None, prompt_mask, z, t, self_cond, prompt_cache=prompt_cache, **own)
        return self.denoiser(self.embed(prompt_ids), prompt_mask, z, t, self_cond, **own)

    def predict(
        self, prompt_ids: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None, *,
        past: Tensor | None = None, prompt_cache=None, edit_logits: Callable[[Tensor], Tensor] | None = None,
        written: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """f_theta (120) and its rounding logits (121): x0_hat (B, N, D) and logits (B, N, V).

        x0_hat = softmax(logits) @ E (I1). ``past`` (B, N): the slots past each response's length, which a
        ``length_prediction`` model needs (L2). ``prompt_cache`` (from ``encode_prompt``) skips the prompt slots'
        layers. ``edit_logits`` (a rollout's: given slots held, repeats blocked, temperature) rewrites the logits,
        possibly in place, before x0_hat is formed from them; the logits returned are the edited ones.

        ``written`` (B, N): round and interpolate these slots only, their logits packed (M, V) in row-major order
        (what ``edit_logits`` then gets and what is returned); x0_hat is the pad row at the others, which is exactly
        the estimate there of logits held one-hot at pad past a response's length (L2), for a fraction of the work.
        """
        out = self.denoiser_output(prompt_ids, prompt_mask, z, t, self_cond, past=past, prompt_cache=prompt_cache)
        logits = self.output_logits(out.float() if written is None else out.float()[written])
        if edit_logits is not None:
            logits = edit_logits(logits)
        if written is None:
            return self.interpolate(logits).to(out.dtype), logits
        pad_row = self.embedding_table[self.config.pad_token_id] / self.config.embedding_scale
        x0 = pad_row.to(out.dtype).expand(*out.shape[:-1], pad_row.shape[-1]).clone()
        x0[written] = self.interpolate(logits).to(out.dtype)  # (I1)
        return x0, logits

    def denoise(
        self, prompt_ids: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None,
        past: Tensor | None = None,
    ) -> Tensor:
        """f_theta (120): x0_hat (B, N, D) from the prompt (B, P), the noisy response z (B, N, D) and t (B,), unit scale
        (``past`` as ``predict`` takes it)."""
        return self.predict(prompt_ids, prompt_mask, z, t, self_cond, past=past)[0]

    def forward(
        self,
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        response_ids: Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DiffusionLMOutput:
        """Algorithm 1: noise the response, predict its clean embeddings, and take both losses.

        Args:
            prompt_ids: (B, P) prompt tokens, padded; ``prompt_mask`` (B, P) is True on real tokens.
            response_ids: (B, N) response tokens padded with ``pad_token_id`` to max_response_length.
            generator: random source for t, the noise and the dropouts (tests); global RNG otherwise.
        """
        cfg, objective = self.config, self.config.training_objective
        self._check_batch(prompt_ids, prompt_mask, response_ids)
        b, device = response_ids.shape[0], response_ids.device
        x0 = self.embed(response_ids)  # (117), (B, N, D)
        prompt_mask = prompt_mask.bool()
        past, loss_length = None, None
        if self.length_predictor is not None:  # (L2) from the whole prompt, before any prompt dropout
            lengths = response_lengths(response_ids, cfg.pad_token_id)
            past = past_the_end(lengths, response_ids.shape[1])
            length_logits = self.length_logits(prompt_ids, prompt_mask).float()
            loss_length = F.cross_entropy(length_logits, lengths, reduction="none")
        if self.training and objective.prompt_dropout > 0:  # drop the prompt: the same weights learn p(response)
            keep = _uniform((b,), generator, device) >= objective.prompt_dropout
            prompt_mask = prompt_mask & keep[:, None]
        if self.time_warp is not None and self.training:  # (W1); not reweighted: warping moves the effort on purpose
            t = self.time_warp.sample(b, generator, device)
        else:
            t = sample_time(b, self.schedule, t_eps=objective.t_eps, generator=generator, device=device)[0]
        t_model = t  # (B,), or each slot's own time (B, N) (A1)
        if cfg.position_noise_skew > 0:
            n = lengths if self.length_predictor is not None else None
            fractions = slot_fractions(n, b, response_ids.shape[1], device)
            t_model = slot_times(t, fractions, cfg.position_noise_skew, objective.t_eps)
        alpha = _per_slot(self.schedule.alpha(t_model).to(x0.dtype))
        sigma = _per_slot(self.schedule.sigma(t_model).to(x0.dtype))
        eps = _normal(x0.shape, generator, device, x0.dtype)
        z = alpha * x0 + sigma * eps  # (118)
        t_model = t_model.to(torch.float32)
        self_cond, held = None, None
        if objective.hold_length and past is not None:  # (H1) the slots past the length held at pad, as sampling does
            # the rollout's own hold, on a copy: the network's logits stay as autograd recorded them
            held = lambda logits: hold_length(logits.clone(), past, cfg.pad_token_id)  # noqa: E731
        if cfg.self_conditioning and self.training:
            # for some examples, condition on the model's own (detached) estimate at this z_t, as at sampling time;
            # the others get zeros, so only the chosen ones are evaluated (a g2p step 0.92x the time at rate 0.5)
            use = _uniform((b,), generator, device) < objective.self_conditioning_rate
            self_cond = self._self_condition_subset(prompt_ids, prompt_mask, z, t_model, past, use, held is not None)
        x0_pred, logits = self.predict(prompt_ids, prompt_mask, z, t_model, self_cond, past=past,
                                       edit_logits=held)  # (120), (121)
        loss_x0 = (x0_pred.float() - x0.float()).pow(2).mean(-1)  # (122), per slot
        loss_round = F.cross_entropy(logits.transpose(1, 2), response_ids, reduction="none")  # (123), per slot
        if held is None:
            loss_x0, loss_round = loss_x0.mean(-1), loss_round.mean(-1)
        else:  # (H1) the held slots cost nothing: the mean over the written ones
            written = lengths.clamp(min=1)
            loss_x0, loss_round = loss_x0.sum(-1) / written, loss_round.sum(-1) / written
        per_example = objective.lambda_x0 * loss_x0 + objective.lambda_round * loss_round  # (124)
        if loss_length is not None:
            per_example = per_example + loss_length
        if self.time_warp is not None and self.training:
            self.time_warp.update(t, loss_round)
        out = DiffusionLMOutput(per_example.mean(), loss_x0.mean(), loss_round.mean(), x0_pred, logits, t,
                                None if loss_length is None else loss_length.mean())
        return out if return_dict else out.to_tuple()

    @torch.no_grad()
    def _self_condition_subset(self, prompt_ids: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor,
                               past: Tensor | None, use: Tensor, hold: bool) -> Tensor:
        """The self-conditioning input of a training batch: the model's own estimate at z_t for the examples ``use``
        (B,) picks (with the length held past ``past`` when ``hold``, as training holds it, H1), zeros for the rest."""
        self_cond = z.new_zeros((*z.shape[:-1], self.self_condition_width))
        if not bool(use.any()):
            return self_cond
        sub_past = None if past is None else past[use]
        held = None
        if hold:
            held = lambda logits: hold_length(logits, sub_past, self.config.pad_token_id)  # noqa: E731
        estimate = self.self_condition_input(*self.predict(prompt_ids[use], prompt_mask[use], z[use], t[use],
                                                           past=sub_past, edit_logits=held))
        self_cond[use] = estimate.to(self_cond.dtype)
        return self_cond

    def _check_batch(self, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor) -> None:
        cfg = self.config
        if prompt_ids.shape != prompt_mask.shape or prompt_ids.ndim != 2:
            raise ValueError(f"prompt_ids {tuple(prompt_ids.shape)} and prompt_mask {tuple(prompt_mask.shape)} must "
                             "both be (B, P).")
        if prompt_ids.shape[1] > cfg.max_prompt_length:
            raise ValueError(f"prompts have {prompt_ids.shape[1]} slots; the model takes at most "
                             f"max_prompt_length={cfg.max_prompt_length}.")
        if response_ids.shape != (prompt_ids.shape[0], cfg.max_response_length):
            raise ValueError(
                f"response_ids must be (B, max_response_length) = ({prompt_ids.shape[0]}, {cfg.max_response_length}), "
                f"padded with pad_token_id={cfg.pad_token_id}; got {tuple(response_ids.shape)}."
            )


def _per_slot(values: Tensor) -> Tensor:
    """(B,) or (B, N) coefficients shaped to scale (B, N, D) states."""
    return values[:, None, None] if values.ndim == 1 else values[..., None]


def _uniform(shape, generator, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _normal(shape, generator, device, dtype) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
