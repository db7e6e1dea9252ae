"""An upper bound on -log p(response | prompt) for the embedding diffusion: the continuous-time ELBO (VDM,
Kingma et al. 2021; Plaid) of the response embeddings plus the rounding step back to tokens (THEORY N1).

    -log p(y) <= KL(q(z_1 | x0) || N(0, I))                                      prior
               + int_{lambda(1)}^{lambda(t_min)} e^{2 lambda} E_eps ||x0 - x0_hat(z_lambda)||^2 dlambda   diffusion
               + E_eps [-log p(y | z_{t_min})]                                      reconstruction

with x0 = E[y] at unit scale, z = alpha x0 + sigma eps, lambda = log(alpha / sigma) (48) so SNR = e^{2 lambda},
and p(y_j = k | z) = softmax_k(-||z_j - alpha e_k||^2 / (2 sigma^2)), the exact posterior of the token under a
uniform prior. Every term is summed over the N response slots (pad slots included: the model writes them too).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..core.schedules import Schedule
from ..core.steps import noise_like
from .generation_config import GenerationConfig
from .length import response_lengths
from .rollout import Rollout

if TYPE_CHECKING:
    from .model import DiffusionLMModel


@dataclass
class NLLBound:
    """The bound per example (nats, mean over Monte Carlo samples), its standard error and its parts."""

    nats: Tensor  # (B,)
    stderr: Tensor  # (B,)
    prior: Tensor  # (B,)
    diffusion: Tensor  # (B,)
    reconstruction: Tensor  # (B,)
    tokens: Tensor  # (B,) what a per-token figure divides by
    length: Tensor | None = None  # (B,) -log p(n | prompt) of a length-predicting model (L2), included in ``nats``

    @property
    def nats_per_token(self) -> float:
        """Total nats over total tokens across the batch."""
        return float(self.nats.sum() / self.tokens.sum())

    @classmethod
    def concatenate(cls, parts: list["NLLBound"]) -> "NLLBound":
        """The bounds of several batches as one, example after example."""
        cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
        length = cat("length") if all(p.length is not None for p in parts) else None
        return cls(cat("nats"), cat("stderr"), cat("prior"), cat("diffusion"), cat("reconstruction"), cat("tokens"),
                   length)


def embedding_nll_bound(
    x0_fn: Callable[[Tensor, Tensor], Tensor], response_ids: Tensor, table: Tensor, schedule: Schedule, t_min: float,
    num_samples: int = 64, generator: torch.Generator | None = None, tokens: Tensor | None = None,
) -> NLLBound:
    """The bound (N1) for responses ``response_ids`` (B, N) over the unit-scale ``table`` (V, D), with the
    denoiser ``x0_fn(z (B, N, D), t (B,)) -> x0_hat``. The diffusion integral is sampled at ``num_samples``
    stratified log-SNRs per example (with fresh noise); its standard error is reported."""
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2 (the standard error needs two), got {num_samples}.")
    x0 = table[response_ids].double()  # (B, N, D)
    b = x0.shape[0]
    t_one = torch.ones((), dtype=torch.float64)
    a1, s1 = float(schedule.alpha(t_one)), float(schedule.sigma(t_one))
    prior = 0.5 * (a1**2 * x0.pow(2) + s1**2 - 1 - 2 * math.log(s1)).sum((1, 2))  # KL per dimension, summed
    lam_lo, lam_hi = float(schedule.log_snr(t_one)), float(schedule.log_snr(torch.tensor(t_min, dtype=torch.float64)))
    a0, s0 = float(schedule.alpha(torch.tensor(t_min))), float(schedule.sigma(torch.tensor(t_min)))
    rows = table.double()
    diffusion, reconstruction = [], []
    for k in range(num_samples):
        u = torch.rand(b, generator=generator, dtype=torch.float64, device=generator.device if generator else "cpu")
        lam = lam_lo + (k + u.to(x0.device)) / num_samples * (lam_hi - lam_lo)  # stratified in lambda
        t = schedule.t_from_log_snr(lam)
        alpha, sigma = schedule.alpha(t)[:, None, None], schedule.sigma(t)[:, None, None]
        z = alpha * x0 + sigma * noise_like(x0, generator)
        x0_hat = x0_fn(z.float(), t.float()).double()
        diffusion.append((lam_hi - lam_lo) * torch.exp(2 * lam) * (x0 - x0_hat).pow(2).sum((1, 2)))
        z_min = a0 * x0 + s0 * noise_like(x0, generator)
        # -||z - alpha e_k||^2 / (2 sigma^2), expanded so that no (B, N, V, D) tensor is formed
        sq = z_min.pow(2).sum(-1, keepdim=True) - 2 * a0 * z_min @ rows.T + a0**2 * rows.pow(2).sum(-1)
        logits = -sq / (2 * s0**2)  # (B, N, V)
        nll = -torch.log_softmax(logits, -1).gather(-1, response_ids[..., None]).squeeze(-1)
        reconstruction.append(nll.sum(-1))
    diffusion_s, reconstruction_s = torch.stack(diffusion), torch.stack(reconstruction)  # (S, B)
    total = prior + diffusion_s + reconstruction_s
    count = tokens if tokens is not None else torch.full((b,), response_ids.shape[1], dtype=torch.float64)
    return NLLBound(total.mean(0), total.std(0) / math.sqrt(num_samples), prior, diffusion_s.mean(0),
                    reconstruction_s.mean(0), count.double())


@torch.no_grad()
def nll_bound(model: "DiffusionLMModel", prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor,
              num_samples: int = 64, generator: torch.Generator | None = None) -> NLLBound:
    """An upper bound on -log p(response | prompt) in nats per example (N1), with its Monte Carlo error.

    x0_hat is the denoiser's own estimate (``Rollout.plain``: no log-SNR offset, no holds; a self-conditioning model
    fed its own first estimate at the same z_t). ``tokens`` counts each response's non-pad tokens plus one (the
    end, as an autoregressive model's end-of-sequence token), for a per-token figure. A length-conditioned model
    (L2) is told the response's length and adds -log p(n | prompt).
    """
    model._check_batch(prompt_ids, prompt_mask, response_ids)
    if model.config.position_noise_skew > 0:
        raise ValueError("the bound (N1) integrates over one noise level shared by every slot, which a model trained "
                         "with position_noise_skew > 0 (A1) never sees; it is not available for such a model.")
    lengths = response_lengths(response_ids, model.config.pad_token_id)
    rollout = Rollout(model, GenerationConfig(), prompt_ids, prompt_mask, lengths=lengths)
    table = model.embedding_table / model.config.embedding_scale
    bound = embedding_nll_bound(lambda z, t: rollout.plain(z, t)[0], response_ids, table, model.schedule,
                                model.config.training_objective.t_eps, num_samples, generator, lengths + 1)
    if model.length_predictor is not None:  # -log p(y | x_p) = -log p(n | x_p) - log p(y | x_p, n) (L2)
        log_p = model.length_logits(prompt_ids, prompt_mask).double().log_softmax(-1)
        bound.length = -log_p.gather(-1, lengths[:, None]).squeeze(-1)
        bound.nats = bound.nats + bound.length
    return bound
