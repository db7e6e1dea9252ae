"""The transformer blocks of the text denoiser (120): rotary positions, attention, and adaLN-Zero blocks, the
joint one and (E2, SeqDiffuSeq) the decoder block that also attends to an encoded prompt. Shapes: B batch, L slots,
H hidden width, hd = H / heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .configuration import DiffusionLMConfig


def rotary_tables(positions: Tensor, head_dim: int, base: float = 10_000.0) -> tuple[Tensor, Tensor]:
    """cos and sin tables for rotary position embeddings, each half repeated: positions (L,) -> two (L, head_dim),
    or one row of positions per example (B, L) -> two (B, 1, L, head_dim), broadcast over the heads."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.float()[..., None] * inv_freq  # (..., L, head_dim / 2)
    angles = torch.cat([angles, angles], -1)
    if positions.ndim == 2:
        angles = angles[:, None]
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

    def project(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v (B, heads, L, hd) of x (B, L, H), rotary positions applied to q and k."""
        b, length, hidden = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Bidirectional attention of q over the keys ``mask`` (broadcast to (B, 1, Lq, Lk); None: every key)
        allows -> (B, Lq, H)."""
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        b, _, length, _ = q.shape
        return self.proj(y.transpose(1, 2).reshape(b, length, -1))

    def forward(self, x: Tensor, mask: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        return self.attend(*self.project(x, rotary), mask)  # (B, L, H)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x (B, L, H) with shift and scale broadcast over L ((B, 1, H)) or given per slot ((B, L, H))."""
    return x * (1 + scale) + shift


class Block(nn.Module):
    """Transformer block with adaLN-Zero conditioning: ``mods`` (B, 1, 6H), or per slot (B, L, 6H), are its own
    ``ada(c)``, or with ``time_modulation="shared"`` (T1) the transformer's one modulation of c plus this block's
    learnt offset ``ada_offset``."""

    mods = 6  # the modulations' width, in units of H

    def __init__(self, config: DiffusionLMConfig, constant: bool = False):
        """``constant``: modulated by a learnt constant instead of t (an encoder block of E2, which never sees t)."""
        super().__init__()
        hidden = config.hidden_size
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(config)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        inner = int(hidden * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden))
        self.drop = nn.Dropout(config.dropout)
        if config.time_modulation == "shared" or constant:
            self.ada, self.ada_offset = None, nn.Parameter(torch.zeros(self.mods * hidden))
        else:
            self.ada, self.ada_offset = nn.Sequential(nn.SiLU(), nn.Linear(hidden, self.mods * hidden)), None

    def forward(self, x: Tensor, mods: Tensor, mask: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = mods.chunk(6, -1)
        x = x + gate1 * self.drop(self.attn(modulate(self.norm1(x), shift1, scale1), mask, rotary))
        return x + gate2 * self.drop(self.mlp(modulate(self.norm2(x), shift2, scale2)))

    def step(self, x: Tensor, mods: Tensor, mask: Tensor, rotary, past: tuple[Tensor, Tensor] | None = None):
        """The block on x alone, its queries also attending to ``past`` keys and values (cached prompt slots, in
        front); returns the new x and x's own (k, v). The same arithmetic as ``forward`` on [past ; x]."""
        shift1, scale1, gate1, shift2, scale2, gate2 = mods.chunk(6, -1)
        q, k, v = self.attn.project(modulate(self.norm1(x), shift1, scale1), rotary)
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        x = x + gate1 * self.drop(self.attn.attend(q, keys, values, mask))
        return x + gate2 * self.drop(self.mlp(modulate(self.norm2(x), shift2, scale2))), (k, v)


class CrossAttention(nn.Module):
    """(E2) The response's queries over the encoded prompt's keys and values, which ``memory`` computes once per
    prompt; a learnt null slot in front is always there to attend to, so an empty prompt (prompt dropout) is
    still a distribution over keys."""

    attend = SelfAttention.attend

    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        hidden = config.hidden_size
        self.heads, self.dropout = config.num_heads, config.dropout
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.null = nn.Parameter(torch.zeros(hidden))

    def memory(self, encoded: Tensor, rotary: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        """k, v (B, heads, 1 + P, hd) of the encoded prompt (B, P, H), rotary prompt positions on k, the null
        slot first (unrotated)."""
        b, p, hidden = encoded.shape
        slots = torch.cat([self.null.to(encoded.dtype).expand(b, 1, hidden), encoded], 1)
        k, v = self.kv(slots).view(b, p + 1, 2, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            k = torch.cat([k[:, :, :1], apply_rotary(k[:, :, 1:], *rotary)], 2)
        return k, v

    def query(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        """q (B, heads, N, hd) of the response slots x (B, N, H), rotary response positions applied."""
        b, n, hidden = x.shape
        q = self.q(x).view(b, n, self.heads, hidden // self.heads).transpose(1, 2)
        return q if rotary is None else apply_rotary(q, *rotary)


class DecoderBlock(Block):
    """(E2, SeqDiffuSeq) A response block: self-attention over the response, cross-attention to the encoded prompt,
    then the MLP, each under its own adaLN-Zero shift, scale and gate of t (``mods`` (B, 1, 9H) or per slot)."""

    mods = 9

    def __init__(self, config: DiffusionLMConfig):
        super().__init__(config)
        self.norm3 = nn.LayerNorm(config.hidden_size, elementwise_affine=False, eps=1e-6)
        self.cross = CrossAttention(config)

    def forward(self, x: Tensor, mods: Tensor, mask: Tensor | None, rotary: tuple[Tensor, Tensor] | None,
                memory: tuple[Tensor, Tensor] | None = None, memory_mask: Tensor | None = None) -> Tensor:
        """x (B, N, H); ``memory`` the (k, v) of ``CrossAttention.memory``, ``memory_mask`` (B, 1, 1, 1 + P)."""
        shift1, scale1, gate1, shift2, scale2, gate2, shift3, scale3, gate3 = mods.chunk(9, -1)
        x = x + gate1 * self.drop(self.attn(modulate(self.norm1(x), shift1, scale1), mask, rotary))
        q = self.cross.query(modulate(self.norm3(x), shift3, scale3), rotary)
        x = x + gate3 * self.drop(self.cross.attend(q, *memory, memory_mask))
        return x + gate2 * self.drop(self.mlp(modulate(self.norm2(x), shift2, scale2)))
