"""f_theta (120) as a pretrained encoder (TESS, Karimi Mahabadi et al. 2024): the encoder's own layers denoise.

The prompt enters as the encoder's own input embeddings (the frozen table, which must be that encoder's),
the noisy response through a linear map plus a timestep embedding; the encoder adds its position and
segment (token type) embeddings, and its hidden states at the response slots map back to the table's
width. All of it but the table is fine-tuned. Shapes: B batch, P prompt slots, N response slots, D table
width, H the encoder's width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .configuration import DiffusionLMConfig
from .network import TimestepEmbedder, check_past, init_linear


def encoder_from_config(encoder_config: dict):
    """The encoder's architecture (its weights come from ``load_pretrained_encoder``), with a one-row word table:
    inputs arrive as embeddings, so its own vocabulary table would be dead weight."""
    from transformers import AutoConfig, AutoModel

    cfg = dict(encoder_config)
    model_type = cfg.pop("model_type")
    cfg["vocab_size"] = 1
    return AutoModel.from_config(AutoConfig.for_model(model_type, **cfg), add_pooling_layer=False)


class EncoderDenoiser(nn.Module):
    """x0_hat = f_theta(z_t, t, x_p) (120) through a pretrained encoder; same signature as ``DiffusionTransformer``."""

    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder_from_config(config.encoder_config)
        hidden, dim = self.encoder.config.hidden_size, config.embedding_dim
        if config.max_prompt_length + config.max_response_length > self.encoder.config.max_position_embeddings:
            raise ValueError(f"max_prompt_length + max_response_length must fit the encoder's "
                             f"{self.encoder.config.max_position_embeddings} positions.")
        self.response_in = nn.Linear(dim * (2 if config.self_conditioning else 1), hidden)
        self.time = TimestepEmbedder(hidden)
        self.end_marker = nn.Embedding(2, hidden) if config.length_prediction else None  # (L2) 1: past the length
        self.norm_out = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, prompt: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None,
                past: Tensor | None = None) -> Tensor:
        """prompt (B, P, D) unit scale, prompt_mask (B, P), z (B, N, D), t (B,) or (B, N) (A1), self_cond (B, N, D)
        -> x0_hat (B, N, D);
        ``past`` (B, N) as ``DiffusionTransformer`` takes it (L2)."""
        b, p, n = prompt.shape[0], prompt.shape[1], z.shape[1]
        marker = 0.0 if self.end_marker is None else self.end_marker(check_past(past, z).long())
        if self.config.self_conditioning:
            z = torch.cat([z, torch.zeros_like(z) if self_cond is None else self_cond], -1)  # (B, N, 2D)
        dtype = self.response_in.weight.dtype
        prompt_in = (prompt * self.config.embedding_scale).to(dtype)  # the encoder's own input embeddings
        c = self.time(t)  # (B, H), or (B, N, H) for per-slot times (A1)
        response_in = self.response_in(z.to(dtype)) + (c[:, None] if t.ndim == 1 else c) + marker  # (B, N, H)
        device = prompt.device
        offset = self.config.max_prompt_length  # response slots after every prompt slot, as DiffusionTransformer
        positions = torch.cat([torch.arange(p), offset + torch.arange(n)]).to(device)[None].expand(b, -1)
        segments = torch.cat([torch.zeros(p, dtype=torch.long), torch.ones(n, dtype=torch.long)]).to(device)
        segments = segments[None].expand(b, -1)
        mask = torch.cat([prompt_mask.bool(), torch.ones(b, n, dtype=torch.bool, device=device)], 1).long()
        hidden = self.encoder(inputs_embeds=torch.cat([prompt_in, response_in], 1), attention_mask=mask,
                              token_type_ids=segments, position_ids=positions).last_hidden_state  # (B, P + N, H)
        return self.out(self.norm_out(hidden[:, p:]))  # (B, N, D)

    def init_module(self, module: nn.Module) -> None:
        """Xavier for the new input map, N(0, 0.02) for the timestep MLP, zeros for the output layer; the
        encoder's own modules keep the weights ``load_pretrained_encoder`` copies in."""
        if any(module is m for m in self.encoder.modules()):
            return
        if isinstance(module, nn.Linear):
            init_linear(module, [self.out], self.time.mlp)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)


def load_pretrained_encoder(denoiser: EncoderDenoiser, source) -> None:
    """Copy a pretrained encoder's layers (all but its word table) into ``denoiser.encoder``."""
    state = {k: v for k, v in source.state_dict().items() if "word_embeddings" not in k and not k.startswith("pooler.")}
    own = denoiser.encoder.state_dict()
    missing = [k for k in own if k not in state and "word_embeddings" not in k]
    if missing:
        raise ValueError(f"the pretrained encoder lacks {missing[:3]}...; encoder_init needs the same architecture as "
                         "its config.")
    denoiser.encoder.load_state_dict({**own, **{k: v for k, v in state.items() if k in own}})
