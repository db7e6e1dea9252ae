"""(L2) Length prediction: p(n | x_p) from the prompt, and the slots past a length that the denoiser is told of.

Non-autoregressive translation decoders (Mask-Predict, Difformer, DINOISER) fix the length before they fill
the slots: a classifier over n = 0..N reads the prompt, and the denoiser learns p(y | x_p, n), each slot told
whether it lies past the end. Training gives the true length; sampling the predicted one, or the best of the
top k (a length beam, scored by the rollout: ``Rollout.length_score``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .configuration import DiffusionLMConfig


def response_lengths(response_ids: Tensor, pad_token_id: int) -> Tensor:
    """n per response (B,): its non-pad tokens."""
    return (response_ids != pad_token_id).sum(-1)


def past_the_end(lengths: Tensor, slots: int) -> Tensor:
    """(B, N) True at the slots j >= n of each response: the ones the model writes as pad (L2)."""
    return torch.arange(slots, device=lengths.device)[None] >= lengths[:, None]


class LengthPredictor(nn.Module):
    """logits of n = 0..max_response_length (B, N + 1) from the prompt's table rows (B, P, D) and mask (B, P).

    A small transformer encoder of its own (``length_layers`` layers at the denoiser's width) with learned
    positions, mean-pooled over the prompt's real tokens, plus an embedding of their count (a mean alone does not
    tell how many tokens it averaged). It reads the prompt only, never the response. With ``length_relative`` a
    second head scores the offset n - m from the prompt's m tokens, added to the first head's score of n (L3). With
    ``length_fertility`` every prompt token adds a fertility to a count, and n is also scored by a Gaussian around
    it (L4)."""

    MIN_VARIANCE = 0.05  # (L4) the count's spread never falls below this (in squared tokens)

    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        hidden = config.hidden_size
        self.prompt_in = nn.Linear(config.embedding_dim, hidden)
        self.position = nn.Embedding(config.max_prompt_length, hidden)
        self.prompt_length = nn.Embedding(config.max_prompt_length + 1, hidden)
        layer = nn.TransformerEncoderLayer(hidden, config.num_heads, int(hidden * config.mlp_ratio), config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.length_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, config.max_response_length + 1)
        self.offset_head = nn.Linear(hidden, config.max_prompt_length + config.max_response_length + 1) \
            if config.length_relative else None
        # (L4) initialised as the model initialises every linear layer (Xavier, bias 0: a count near 0 at first);
        # starting at one token per prompt token with the spread near 0.74 learnt slower (g2p 49.6% of validation
        # lengths right after 1000 steps, against 58.6%)
        self.fertility = nn.Linear(hidden, 1) if config.length_fertility else None
        self.spread = nn.Linear(hidden, 1) if config.length_fertility else None

    def forward(self, prompt: Tensor, prompt_mask: Tensor) -> Tensor:
        keys = prompt_mask.bool().clone()
        keys[~keys.any(-1), 0] = True  # an empty prompt still gives a distribution (the length prior)
        positions = torch.arange(prompt.shape[1], device=prompt.device)
        h = self.prompt_in(prompt.to(self.prompt_in.weight.dtype)) + self.position(positions)[None]
        h = self.encoder(h, src_key_padding_mask=~keys)
        pooled = (h * keys[..., None]).sum(1) / keys.sum(1, keepdim=True)
        m = prompt_mask.bool().sum(-1)
        features = self.norm(pooled + self.prompt_length(m))
        logits = self.head(features)
        n = torch.arange(logits.shape[-1], device=logits.device)
        if self.offset_head is not None:
            offsets = n[None] - m[:, None] + self.position.num_embeddings  # n - m, shifted to index 0..P+N
            logits = logits + self.offset_head(features).gather(-1, offsets)  # (L3)
        if self.fertility is not None:
            count = (self.fertility(h).squeeze(-1) * prompt_mask.to(h.dtype)).sum(-1)  # sum_i f_i
            variance = F.softplus(self.spread(features)).squeeze(-1) + self.MIN_VARIANCE
            logits = logits - (n[None] - count[:, None]) ** 2 / (2 * variance[:, None])  # (L4)
        return logits
