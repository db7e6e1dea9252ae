"""The denoiser f_theta of (120): a bidirectional transformer over [clean prompt ; noisy response].

It is conditioned on t through adaLN-Zero (DiT): every block's LayerNorm shift/scale and residual
gate are regressed from the timestep embedding, starting at zero so each block begins as the
identity. Shapes: B batch, P prompt slots, N response slots, L = P + N, D embedding width,
H hidden width. All embeddings come in and go out in units of sigma_E (unit RMS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..common.layers import timestep_embedding
from .configuration import DiffusionLMConfig


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))  # (B, H)


def rotary_tables(positions: Tensor, head_dim: int, base: float = 10_000.0) -> tuple[Tensor, Tensor]:
    """cos and sin tables for rotary position embeddings: (L,) -> two (L, head_dim), each half repeated."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None]  # (L, head_dim / 2)
    angles = torch.cat([angles, angles], -1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel i with channel i + head_dim/2 of x (B, heads, L, head_dim) by position-dependent angles."""
    x1, x2 = x.chunk(2, -1)
    return (x * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        self.heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.dropout

    def forward(self, x: Tensor, mask: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        b, length, hidden = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, heads, L, hd)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        # bidirectional: every query sees every unmasked key; mask (B, 1, 1, L) is True where a key is real
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, length, hidden))  # (B, L, H)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """Transformer block with adaLN-Zero conditioning on c (B, H)."""

    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        hidden = config.hidden_size
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(config)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        inner = int(hidden * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden))
        self.drop = nn.Dropout(config.dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: Tensor, c: Tensor, mask: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, -1)  # 6 x (B, H)
        x = x + gate1[:, None] * self.drop(self.attn(modulate(self.norm1(x), shift1, scale1), mask, rotary))
        return x + gate2[:, None] * self.drop(self.mlp(modulate(self.norm2(x), shift2, scale2)))


class DiffusionTransformer(nn.Module):
    """x0_hat = f_theta(z_t, t, x_p) (120), with optional self-conditioning on a previous x0_hat."""

    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        hidden, dim = config.hidden_size, config.embedding_dim
        self.config = config
        self.prompt_in = nn.Linear(dim, hidden)
        self.response_in = nn.Linear(dim * (2 if config.self_conditioning else 1), hidden)
        self.segment = nn.Embedding(2, hidden)  # 0: prompt, 1: response
        self.position = None
        if config.position_embedding == "learned":
            self.position = nn.Embedding(config.max_prompt_length + config.max_response_length, hidden)
        self.time = TimestepEmbedder(hidden)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm_out = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.out = nn.Linear(hidden, dim)

    def forward(
        self, prompt: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None
    ) -> Tensor:
        """prompt (B, P, D), prompt_mask (B, P) bool, z (B, N, D), t (B,), self_cond (B, N, D) -> x0_hat (B, N, D)."""
        b, p, n = prompt.shape[0], prompt.shape[1], z.shape[1]
        if self.config.self_conditioning:
            z = torch.cat([z, torch.zeros_like(z) if self_cond is None else self_cond], -1)  # (B, N, 2D)
        dtype = self.prompt_in.weight.dtype
        h = torch.cat([self.prompt_in(prompt.to(dtype)), self.response_in(z.to(dtype))], 1)  # (B, L, H)
        segments = torch.cat([torch.zeros(p, dtype=torch.long), torch.ones(n, dtype=torch.long)]).to(h.device)
        h = h + self.segment(segments)[None]
        # response slots sit after all max_prompt_length prompt slots (however many the batch uses), or on them
        offset = self.config.max_prompt_length if self.config.response_positions == "after_prompt" else 0
        positions = torch.cat([torch.arange(p), offset + torch.arange(n)]).to(h.device)
        rotary = None
        if self.position is not None:
            h = h + self.position(positions)[None]
        else:
            rotary = rotary_tables(positions, self.config.hidden_size // self.config.num_heads)
        mask = torch.cat([prompt_mask.bool(), torch.ones(b, n, dtype=torch.bool, device=h.device)], 1)[:, None, None, :]
        c = self.time(t)  # (B, H)
        for block in self.blocks:
            h = block(h, c, mask, rotary)
        shift, scale = self.ada_out(c).chunk(2, -1)
        return self.out(modulate(self.norm_out(h[:, p:]), shift, scale))  # (B, N, D)

    def init_module(self, module: nn.Module) -> None:
        """DiT initialisation of one submodule: Xavier linears, N(0, 0.02) for the timestep MLP and the
        embeddings, zeros for the adaLN modulations and the output layer (every block starts as the
        identity, the output at 0). transformers calls this per module inside ``post_init``, skipping
        tensors loaded from a checkpoint."""
        zero = [block.ada[-1] for block in self.blocks] + [self.ada_out[-1], self.out]
        if isinstance(module, nn.Linear):
            if any(module is z for z in zero):
                nn.init.zeros_(module.weight)
            elif any(module is m for m in self.time.mlp):
                nn.init.normal_(module.weight, std=0.02)
            else:
                nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
