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
from .configuration import DiffusionLMConfig
from .transformer import DiffusionTransformer
from .encoder_denoiser import EncoderDenoiser
from .length import LengthPredictor, past_the_end, response_lengths
from .likelihood import NLLBound
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
        self.denoiser = EncoderDenoiser(config) if config.encoder_init else DiffusionTransformer(config)
        self.time_warp = TimeWarp(config.t_eps) if config.time_warping else None
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
        length = [p for p in self.length_predictor.parameters() if p.requires_grad] if self.length_predictor is not None else []
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
        x0 = x0.to(table.dtype)
        if self.config.rounding == "dot":
            logits = x0 @ table.T
        else:  # -||x0 - e||^2 = 2 x0.e - ||e||^2 - ||x0||^2; the last term does not change the argmax or the CE
            logits = (2 * x0) @ table.T
            logits = logits.sub_(table.pow(2).sum(-1)).sub_(x0.pow(2).sum(-1, keepdim=True))
        if self.config.rounding_temperature == 1.0:
            return logits
        return logits.div_(self.config.rounding_temperature)  # in place: (B, N, V) is a step's largest tensor

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
        if self.config.prompt_attention != "cached":
            return None
        return self.denoiser.encode_prompt(self.embed(prompt_ids), prompt_mask)

    def predict(
        self, prompt_ids: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None,
        temperature: float = 1.0, prompt_cache=None, edit_logits: Callable[[Tensor], Tensor] | None = None,
        past: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """f_theta (120) and its rounding logits (121): x0_hat (B, N, D) and logits (B, N, V).

        ``temperature`` < 1 sharpens an interpolated x0_hat towards its most likely rows (I1) at sampling
        time (it does not change the logits, or a direct x0_hat). ``prompt_cache`` (from ``encode_prompt``)
        skips the prompt slots' layers. ``edit_logits`` (sampling: given slots held, repeats blocked) rewrites the
        logits, which it may change in place, before an interpolated x0_hat is formed from them. ``past`` (B, N):
        the slots past each response's length, which a ``length_prediction`` model needs (L2).
        """
        own = {"past": past} if self.length_predictor is not None else {}
        if prompt_cache is not None:
            out = self.denoiser(None, prompt_mask, z, t, self_cond, prompt_cache=prompt_cache, **own)
        else:
            out = self.denoiser(self.embed(prompt_ids), prompt_mask, z, t, self_cond, **own)
        logits = self.rounding_logits(out.float())
        if edit_logits is not None:
            logits = edit_logits(logits)
        if self.config.x0_parameterization == "interpolated":
            return self.interpolate(logits, temperature).to(out.dtype), logits
        return out, logits

    @torch.no_grad()
    def nll(self, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor, num_samples: int = 64,
            generator: torch.Generator | None = None) -> "NLLBound":
        """An upper bound on -log p(response | prompt) in nats per example (N1), with its Monte Carlo error.

        x0_hat is the plain denoiser (no log-SNR offset), self-conditioned on its own first estimate at the same
        z_t when the model uses self-conditioning. ``tokens`` counts each response's non-pad tokens plus one
        (the end, as an autoregressive model's end-of-sequence token), for a per-token figure.
        """
        from .likelihood import embedding_nll_bound

        self._check_batch(prompt_ids, prompt_mask, response_ids)
        lengths = response_lengths(response_ids, self.config.pad_token_id)
        past = past_the_end(lengths, response_ids.shape[1])

        def x0_fn(z: Tensor, t: Tensor) -> Tensor:
            first = self.predict(prompt_ids, prompt_mask, z, t, past=past)[0]
            return self.predict(prompt_ids, prompt_mask, z, t, first, past=past)[0] if self.config.self_conditioning else first

        table = self.embedding_table / self.config.embedding_scale
        bound = embedding_nll_bound(x0_fn, response_ids, table, self.schedule, self.config.t_eps, num_samples,
                                    generator, lengths + 1)
        if self.length_predictor is not None:  # -log p(y | x_p) = -log p(n | x_p) - log p(y | x_p, n) (L2)
            log_p = self.length_logits(prompt_ids, prompt_mask).double().log_softmax(-1)
            bound.length = -log_p.gather(-1, lengths[:, None]).squeeze(-1)
            bound.nats = bound.nats + bound.length
        return bound

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
        cfg = self.config
        self._check_batch(prompt_ids, prompt_mask, response_ids)
        b, device = response_ids.shape[0], response_ids.device
        x0 = self.embed(response_ids)  # (117), (B, N, D)
        prompt_mask = prompt_mask.bool()
        lengths, past, loss_length = None, None, None
        if self.length_predictor is not None:  # (L2) from the whole prompt, before any prompt dropout
            lengths = response_lengths(response_ids, cfg.pad_token_id)
            past = past_the_end(lengths, response_ids.shape[1])
            loss_length = F.cross_entropy(self.length_logits(prompt_ids, prompt_mask).float(), lengths, reduction="none")
        if self.training and cfg.prompt_dropout > 0:  # drop the prompt: the same weights learn p(response)
            keep = _uniform((b,), generator, device) >= cfg.prompt_dropout
            prompt_mask = prompt_mask & keep[:, None]
        if self.time_warp is not None and self.training:  # (W1); not reweighted: warping moves the effort on purpose
            t, pi = self.time_warp.sample(b, generator, device), None
        else:
            t, pi = sample_time(b, self.schedule, t_sampling=cfg.t_sampling, t_eps=cfg.t_eps, generator=generator, device=device)
        alpha = self.schedule.alpha(t).to(x0.dtype)[:, None, None]
        sigma = self.schedule.sigma(t).to(x0.dtype)[:, None, None]
        eps = _normal(x0.shape, generator, device, x0.dtype)
        z = alpha * x0 + sigma * eps  # (118)
        t_model = t.to(torch.float32)
        self_cond, previous = None, None
        if self.training and cfg.rollout_training > 0:
            # (R1): the state one DDIM step (127)-(130) from the model's own estimate at a noisier t' gives
            with torch.no_grad():
                t_prev, z_prev, previous = self._noisier_estimate(prompt_ids, prompt_mask, x0, eps, t, generator, past)
                a_prev = self.schedule.alpha(t_prev).to(x0.dtype)[:, None, None]
                s_prev = self.schedule.sigma(t_prev).to(x0.dtype)[:, None, None]
                z_roll = alpha * previous + sigma * (z_prev - a_prev * previous) / s_prev
            roll = (_uniform((b,), generator, device) < cfg.rollout_training)[:, None, None]
            z = torch.where(roll, z_roll, z)
        if cfg.self_conditioning and self.training:
            # half the time, condition on the model's own (detached) estimate, as at sampling time
            with torch.no_grad():
                estimate = previous if previous is not None else self._self_conditioning_estimate(
                    prompt_ids, prompt_mask, x0, eps, z, t, generator, past)
            use = (_uniform((b,), generator, device) < 0.5)[:, None, None]
            self_cond = torch.where(use, estimate, torch.zeros_like(estimate))
        x0_pred, logits = self.predict(prompt_ids, prompt_mask, z, t_model, self_cond, past=past)  # (120), (121)
        loss_x0 = (x0_pred.float() - x0.float()).pow(2).mean(-1).mean(-1)  # (122), per example
        loss_round = F.cross_entropy(logits.transpose(1, 2), response_ids, reduction="none").mean(-1)  # (123)
        per_example = cfg.lambda_x0 * loss_x0 + cfg.lambda_round * loss_round  # (124)
        if cfg.t_sampling == "importance" and pi is not None:  # the same objective as uniform t, estimated with t ~ pi
            per_example = per_example * (1.0 / ((1 - cfg.t_eps) * pi)).to(per_example.dtype)
        if loss_length is not None:
            per_example = per_example + loss_length
        if self.time_warp is not None and self.training:
            self.time_warp.update(t, loss_round)
        out = DiffusionLMOutput(per_example.mean(), loss_x0.mean(), loss_round.mean(), x0_pred, logits, t,
                                None if loss_length is None else loss_length.mean())
        return out if return_dict else out.to_tuple()

    def _noisier_estimate(self, prompt_ids, prompt_mask, x0, eps, t, generator, past) -> tuple[Tensor, Tensor, Tensor]:
        """t' = t + U(0, 0.1) (at most 1), z_t' on the same noise (118), and the model's estimate there (no
        self-conditioning) at the rollout temperature, as a sampler would compute it."""
        t_prev = (t + 0.1 * _uniform(t.shape, generator, t.device).to(t.dtype)).clamp(max=1.0)
        alpha = self.schedule.alpha(t_prev).to(x0.dtype)[:, None, None]
        sigma = self.schedule.sigma(t_prev).to(x0.dtype)[:, None, None]
        z_prev = alpha * x0 + sigma * eps
        estimate = self.predict(prompt_ids, prompt_mask, z_prev, t_prev.to(torch.float32),
                                temperature=self.config.rollout_temperature, past=past)[0]
        return t_prev, z_prev, estimate

    def _self_conditioning_estimate(self, prompt_ids, prompt_mask, x0, eps, z, t, generator, past) -> Tensor:
        """The estimate training feeds back (``self_conditioning_source``): at z_t, at a noisier z_t' on the same
        noise (the sampler's previous step), or the rounded estimate at z_t."""
        source = self.config.self_conditioning_source
        if source == "noisier":
            return self._noisier_estimate(prompt_ids, prompt_mask, x0, eps, t, generator, past)[2]
        estimate = self.denoise(prompt_ids, prompt_mask, z, t.to(torch.float32), past=past)
        if source == "glancing":
            return self._glance(estimate, x0, generator)
        return self.clamp_to_table(estimate) if source == "rounded" else estimate

    def _glance(self, estimate: Tensor, x0: Tensor, generator) -> Tensor:
        """(G1): reveal floor(n_wrong / 2) random slots of each example at their true embeddings."""
        wrong = (self.round(estimate) != self.round(x0)).sum(-1)  # (B,) slots the estimate rounds wrongly
        scores = _uniform(estimate.shape[:2], generator, estimate.device)  # a random order of the slots
        rank = scores.argsort(-1).argsort(-1)  # (B, N) each slot's place in that order
        reveal = rank < (wrong // 2)[:, None]
        return torch.where(reveal[..., None], x0.to(estimate.dtype), estimate)

    def _check_batch(self, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor) -> None:
        cfg = self.config
        if prompt_ids.shape != prompt_mask.shape or prompt_ids.ndim != 2:
            raise ValueError(f"prompt_ids {tuple(prompt_ids.shape)} and prompt_mask {tuple(prompt_mask.shape)} must both be (B, P).")
        if prompt_ids.shape[1] > cfg.max_prompt_length:
            raise ValueError(f"prompts have {prompt_ids.shape[1]} slots; the model takes at most max_prompt_length={cfg.max_prompt_length}.")
        if response_ids.shape != (prompt_ids.shape[0], cfg.max_response_length):
            raise ValueError(
                f"response_ids must be (B, max_response_length) = ({prompt_ids.shape[0]}, {cfg.max_response_length}), "
                f"padded with pad_token_id={cfg.pad_token_id}; got {tuple(response_ids.shape)}."
            )


def _uniform(shape, generator, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _normal(shape, generator, device, dtype) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
