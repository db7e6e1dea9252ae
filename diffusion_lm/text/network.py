"""The denoiser f_theta of (120): a bidirectional transformer over [clean prompt ; noisy response].

It is conditioned on t through adaLN-Zero (DiT): every block's LayerNorm shift/scale and residual
gate are regressed from the timestep embedding, starting at zero so each block begins as the
identity. Shapes: B batch, P prompt slots, N response slots, L = P + N, D embedding width,
H hidden width. All embeddings come in and go out in units of sigma_E (unit RMS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..common.layers import timestep_embedding
from .blocks import Block, DecoderBlock, modulate, rotary_tables
from .configuration import DiffusionLMConfig


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        """(B,) -> (B, H), or per-slot times (B, N) -> (B, N, H) (A1)."""
        return self.mlp(timestep_embedding(t.reshape(-1), self.freq_dim)).view(*t.shape, -1)


def init_linear(module: nn.Linear, zero: list[nn.Module], time_mlp: nn.Module) -> None:
    """DiT initialisation of a linear layer: zeros for those in ``zero`` (modulations, outputs), N(0, 0.02) in the
    timestep MLP, Xavier otherwise; biases at zero."""
    if any(module is z for z in zero):
        nn.init.zeros_(module.weight)
    elif any(module is m for m in time_mlp):
        nn.init.normal_(module.weight, std=0.02)
    else:
        nn.init.xavier_uniform_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def check_past(past: Tensor | None, z: Tensor) -> Tensor:
    """``past`` (B, N) of a length-conditioned denoiser (L2), checked against the state z (B, N, D)."""
    if past is None:
        raise ValueError("this model is conditioned on the response length (length_prediction=True): pass past, (B, N) "
                         "True at the slots past each response's length (diffusion_lm.text.length.past_the_end).")
    if tuple(past.shape) != tuple(z.shape[:2]):
        raise ValueError(f"past must have shape {tuple(z.shape[:2])} (batch, response slots), got {tuple(past.shape)}.")
    return past


class TimeCondition:
    """The timestep embedding of t (B,), or of per-slot times (B, N) (A1), and what a layer makes of it.

    Per-slot times are embedded once per distinct time: a rollout's slots share a few dozen times, so the
    modulations cost a fraction of one per slot."""

    def __init__(self, embedder: TimestepEmbedder, t: Tensor):
        if t.ndim == 1:
            self.c, self.index = embedder(t)[:, None], None  # (B, 1, H)
        else:
            times, self.index = torch.unique(t, return_inverse=True)  # (U,), (B, N)
            self.c = embedder(times)  # (U, H)

    def map(self, layer: nn.Module) -> Tensor:
        """layer(c) as (B, 1, K), or (B, N, K) for per-slot times."""
        out = layer(self.c)
        return out if self.index is None else out[self.index]


@dataclass
class PromptCache:
    """Each layer's keys and values of the prompt slots ((B, heads, P, hd) each) for ``prompt_attention="cached"``,
    or (E2, ``"encoder_decoder"``) each decoder block's keys and values of the encoded prompt ((B, heads, 1 + P, hd),
    a null slot first)."""

    layers: list[tuple[Tensor, Tensor]]
    prompt_mask: Tensor  # (B, P)


class DiffusionTransformer(nn.Module):
    """x0_hat = f_theta(z_t, t, x_p) (120), with optional self-conditioning on a previous x0_hat.

    With ``prompt_attention="cached"`` the prompt slots attend only to the prompt and are modulated by a learned
    constant instead of t, so ``encode_prompt`` computes their keys and values once and every sampler step
    runs the response slots alone against them (``forward(..., prompt_cache=...)``), the same function. With
    ``"encoder_decoder"`` (E2, SeqDiffuSeq) ``encoder_layers`` blocks of their own encode the prompt once, without t,
    and the other ``num_layers - encoder_layers`` blocks are decoder blocks over the response alone, each
    cross-attending to the encoded prompt.
    """

    def __init__(self, config: DiffusionLMConfig):
        super().__init__()
        hidden, dim = config.hidden_size, config.embedding_dim
        self.config = config
        self.prompt_in = nn.Linear(dim, hidden)
        self.response_in = nn.Linear(dim * (2 if config.self_conditioning else 1), hidden)
        self.segment = nn.Embedding(2, hidden)  # 0: prompt, 1: response
        self.end_marker = nn.Embedding(2, hidden) if config.length_prediction else None  # (L2) 1: past the length
        self.position = None
        if config.position_embedding == "learned":
            self.position = nn.Embedding(config.max_prompt_length + config.max_response_length, hidden)
        self.time = TimestepEmbedder(hidden)
        self.shared_ada = None  # (T1): one modulation of t for every block, each adding its own offset
        if config.time_modulation == "shared":
            width = (DecoderBlock if config.prompt_attention == "encoder_decoder" else Block).mods
            self.shared_ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, width * hidden))
        self.prompt_condition = nn.Parameter(torch.zeros(hidden)) if config.prompt_attention == "cached" else None
        self.encoder = self.encoder_norm = None
        if config.prompt_attention == "encoder_decoder":  # (E2)
            encoder_layers = config.resolved_encoder_layers
            self.encoder = nn.ModuleList(Block(config, constant=True) for _ in range(encoder_layers))
            self.encoder_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
            self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.num_layers - encoder_layers))
        else:
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm_out = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.out = nn.Linear(hidden, dim)
        self.logit_head = None  # (O1) a learnt full-rank term of the rounding logits, read from the same state
        self.belief = None  # (S2) the previous estimate's probabilities, read through a learnt map
        with torch.random.fork_rng(devices=[]):  # built off the random stream: the other weights stay the plain
            if config.learned_logits:  # model's, and init_module zeroes these
                self.logit_head = nn.Linear(hidden, config.vocab_size)
            if config.belief_self_conditioning:
                self.belief = nn.Linear(config.vocab_size, hidden, bias=False)

    def _embed(self, x: Tensor, segment: int, positions: Tensor,
               split: int | None = None) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """Slot inputs (B, L, H) with segment (``segment``, or 0 before ``split`` and 1 after) and position added,
        and the rotary tables for ``positions``."""
        ids = torch.full((x.shape[1],), segment, dtype=torch.long, device=x.device)
        if split is not None:
            ids[split:] = 1
        h = x + self.segment(ids)[None]
        if self.position is not None:
            return h + self.position(positions)[None], None
        return h, rotary_tables(positions, self.config.hidden_size // self.config.num_heads)

    def _positions(self, p: int, n: int, device, prompt_mask: Tensor | None = None,
                   past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Prompt positions (P,) and response positions (N,), or (B, N) with ``response_positions="proportional"``.

        Response slots sit after all max_prompt_length prompt slots, however many the batch uses: slot j at P + j,
        or (P1) at P + (j + 1/2) m / n - 1/2 for a prompt of m tokens and a response of n, so the n written slots
        span the prompt's m positions, shifted by P (an empty prompt, as under prompt dropout, keeps m / n = 1)."""
        pos_p, start = torch.arange(p, device=device), self.config.max_prompt_length
        slots = torch.arange(n, device=device, dtype=torch.float32)
        if self.config.response_positions != "proportional" or n == 0:
            return pos_p, start + slots.long()
        m = prompt_mask.sum(-1).float()  # (B,)
        written = (~past).sum(-1).clamp(min=1).float()  # (B,), past checked by _response_inputs
        ratio = torch.where(m > 0, m / written, torch.ones_like(m))[:, None]  # (B, 1)
        return pos_p, start + (slots[None] + 0.5) * ratio - 0.5  # (P1)

    def _response_inputs(self, z: Tensor, self_cond: Tensor | None, past: Tensor | None) -> Tensor:
        """Response slot inputs (B, N, H) from the state z (B, N, D) and the self-conditioning input: the previous
        estimate (B, N, D), followed by its probabilities (B, N, V) with ``belief_self_conditioning`` (S2)."""
        d, dtype = z.shape[-1], self.response_in.weight.dtype
        inputs = z
        if self.config.self_conditioning:
            inputs = torch.cat([z, torch.zeros_like(z) if self_cond is None else self_cond[..., :d]], -1)  # (B, N, 2D)
        h = self.response_in(inputs.to(dtype))
        if self.belief is not None and self_cond is not None:
            h = h + self.belief(self_cond[..., d:].to(dtype))  # (S2)
        return h if self.end_marker is None else h + self.end_marker(check_past(past, z).long())  # (L2)

    def _prompt_mask(self, prompt_mask: Tensor) -> Tensor:
        """(B, 1, P, P) for cached mode: each prompt slot sees the real prompt slots, and always itself."""
        p = prompt_mask.shape[1]
        return (prompt_mask.bool()[:, None, :] | torch.eye(p, dtype=torch.bool, device=prompt_mask.device))[:, None]

    def forward(
        self, prompt: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor, self_cond: Tensor | None = None,
        prompt_cache: PromptCache | None = None, past: Tensor | None = None,
    ) -> Tensor:
        """prompt (B, P, D), prompt_mask (B, P) bool, z (B, N, D), t (B,) or one time per response slot (B, N) (A1),
        self_cond (B, N, D) -> the output (B, N, D) that the rounding logits read (121), or (B, N, D + V) with
        ``learned_logits`` (O1).

        ``past`` (B, N) True at the slots past the response's length: required by a ``length_prediction`` model (L2)."""
        if prompt_cache is not None:
            return self._with_cache(prompt_cache, z, t, self_cond, past)
        if self.encoder is not None:
            return self._with_cache(self.encode_prompt(prompt, prompt_mask), z, t, self_cond, past)
        b, p, n = prompt.shape[0], prompt.shape[1], z.shape[1]
        prompt_in = self.prompt_in(prompt.to(self.prompt_in.weight.dtype))
        slots = torch.cat([prompt_in, self._response_inputs(z, self_cond, past)], 1)
        pos_p, pos_r = self._positions(p, n, z.device, prompt_mask, past)
        positions = torch.cat([pos_p.expand(*pos_r.shape[:-1], p).to(pos_r.dtype), pos_r], -1)
        h, rotary = self._embed(slots, 0, positions, split=p)
        keys = torch.cat([prompt_mask.bool(), torch.ones(b, n, dtype=torch.bool, device=h.device)], 1)  # (B, L)
        c = TimeCondition(self.time, t)
        if self.prompt_condition is None:
            mask = keys[:, None, None, :]
            # joint prompt slots are modulated by the response's time; by its mean when each slot has its own (A1)
            c_prompt = None if c.index is None else self.time(t.float().mean(-1))[:, None]
        else:  # prompt queries see the prompt only: (B, 1, L, L)
            mask = keys[:, None, None, :].expand(b, 1, p + n, p + n).clone()
            mask[:, :, :p] = False
            mask[:, :, :p, :p] = self._prompt_mask(prompt_mask)
        mods = self._modulations(c)  # per block: (B, 1, 6H), or (B, N, 6H) with per-slot times
        if self.prompt_condition is not None:  # prompt slots: the learned constant's modulation
            mods = [torch.cat([own[None, None].expand(b, p, -1), m.expand(-1, n, -1)], 1)
                    for own, m in zip(self._modulations(self.prompt_condition), mods)]
        elif c_prompt is not None:  # prompt slots: the mean time's
            mods = [torch.cat([own.expand(-1, p, -1), m], 1) for own, m in zip(self._modulations(c_prompt), mods)]
        for block, block_mods in zip(self.blocks, mods):
            h = block(h, block_mods, mask, rotary)
        return self._output(h[:, p:], c)

    def _modulations(self, c: "Tensor | TimeCondition") -> list[Tensor]:
        """Every block's adaLN modulations (..., 6H) of a time embedding c (..., H), or of a ``TimeCondition``: each
        block's own ``ada(c)``, or (T1) the one shared modulation plus each block's offset."""
        apply = c.map if isinstance(c, TimeCondition) else (lambda layer: layer(c))
        if self.shared_ada is None:
            return [apply(block.ada) for block in self.blocks]
        shared = apply(self.shared_ada)
        return [shared + block.ada_offset for block in self.blocks]

    def _output(self, h: Tensor, c: "TimeCondition") -> Tensor:
        """(B, N, D), or with ``learned_logits`` (O1) (B, N, D + V): the output, then the learnt logit term."""
        shift, scale = c.map(self.ada_out).chunk(2, -1)
        h = modulate(self.norm_out(h), shift, scale)
        if self.logit_head is None:
            return self.out(h)
        return torch.cat([self.out(h), self.logit_head(h)], -1)

    def encode_prompt(self, prompt: Tensor, prompt_mask: Tensor) -> PromptCache:
        """Every layer's prompt keys and values, computed once (``prompt_attention`` ``"cached"`` or
        ``"encoder_decoder"``)."""
        if self.prompt_condition is None and self.encoder is None:
            raise ValueError("encode_prompt needs a model built with prompt_attention='cached' or 'encoder_decoder'.")
        pos_p, _ = self._positions(prompt.shape[1], 0, prompt.device)
        h, rotary = self._embed(self.prompt_in(prompt.to(self.prompt_in.weight.dtype)), 0, pos_p)
        mask, layers = self._prompt_mask(prompt_mask), []
        if self.encoder is not None:  # (E2) the encoder's own blocks, then each decoder block's keys and values
            for block in self.encoder:
                h = block(h, block.ada_offset[None, None], mask, rotary)
            encoded = self.encoder_norm(h)
            return PromptCache([block.cross.memory(encoded, rotary) for block in self.blocks], prompt_mask.bool())
        for block, mods in zip(self.blocks, self._modulations(self.prompt_condition)):
            h, kv = block.step(h, mods[None, None], mask, rotary)
            layers.append(kv)
        return PromptCache(layers, prompt_mask.bool())

    def _with_cache(self, cache: PromptCache, z: Tensor, t: Tensor, self_cond: Tensor | None,
                    past: Tensor | None) -> Tensor:
        b, p, n = z.shape[0], cache.prompt_mask.shape[1], z.shape[1]
        response_in = self._response_inputs(z, self_cond, past)
        _, pos_r = self._positions(p, n, z.device, cache.prompt_mask, past)
        h, rotary = self._embed(response_in, 1, pos_r)
        c = TimeCondition(self.time, t)
        if self.encoder is not None:  # (E2) the response attends to itself, and to the null slot and the prompt
            ones = torch.ones(b, 1, dtype=torch.bool, device=z.device)
            memory_mask = torch.cat([ones, cache.prompt_mask], 1)[:, None, None, :]
            for block, memory, mods in zip(self.blocks, cache.layers, self._modulations(c)):
                h = block(h, mods, None, rotary, memory, memory_mask)
            return self._output(h, c)
        keys = torch.cat([cache.prompt_mask, torch.ones(b, n, dtype=torch.bool, device=z.device)], 1)[:, None, None, :]
        for block, past, mods in zip(self.blocks, cache.layers, self._modulations(c)):
            h, _ = block.step(h, mods, keys, rotary, past)
        return self._output(h, c)

    def init_module(self, module: nn.Module) -> None:
        """DiT initialisation of one submodule: Xavier linears, N(0, 0.02) for the timestep MLP and the
        embeddings, zeros for the adaLN modulations and the output layer (every block starts as the
        identity, the output at 0). transformers calls this per module inside ``post_init``, skipping
        tensors loaded from a checkpoint."""
        ada = [block.ada for block in self.blocks] if self.shared_ada is None else [self.shared_ada]
        zero = [layer[-1] for layer in ada] + [self.ada_out[-1], self.out]
        zero += [layer for layer in (self.logit_head, self.belief) if layer is not None]
        if isinstance(module, nn.Linear):
            init_linear(module, zero, self.time.mlp)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
