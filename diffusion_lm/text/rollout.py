"""``Rollout``: how one generation call turns a noisy state into an x0 estimate (126), and the state it keeps.

Every estimate the text model forms outside training goes through here: a sampler's steps (``rollout(z, t)`` is
the core ``model(x, t) -> x0`` callable), the final rounding (121), the length beam's score (L2), distillation's
next self-conditioning input (D1) and the likelihood bound's denoiser (N1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .generation_config import GenerationConfig
from .length import past_the_end
from .repeats import RepeatBlock, block_adjacent_repeats

if TYPE_CHECKING:
    from .model import DiffusionLMModel


def condition_enhanced_time(schedule, t: Tensor, log_snr_offset: float) -> Tensor:
    """(C1) the time, float32, at which the denoiser reads a state at ``t``: log-SNR lowered by ``log_snr_offset``."""
    if log_snr_offset <= 0:
        return t.float()
    return schedule.t_from_log_snr(schedule.log_snr(t.double()) - log_snr_offset).float()


def hold_given(logits: Tensor, ids: Tensor, given: Tensor) -> Tensor:
    """(F1) logits (B, N, V) that are one-hot (0 at the token, -inf elsewhere) at the given slots."""
    one_hot = torch.full_like(logits, float("-inf")).scatter(-1, ids[..., None], 0.0)
    return torch.where(given[..., None], one_hot, logits)


def hold_length(logits: Tensor, past: Tensor, pad_token_id: int) -> Tensor:
    """(L2) logits (B, N, V) that are one-hot pad at the slots ``past`` the length, and bar pad before it, so the
    response has exactly that length (a length-conditioned model was trained never to write pad there). Edits
    ``logits`` in place."""
    one_hot = torch.full_like(logits[0, 0], float("-inf"))
    one_hot[pad_token_id] = 0.0
    logits[..., pad_token_id] = torch.where(past, logits[..., pad_token_id], float("-inf"))
    logits[past] = one_hot  # in place: a (B, N, V) copy per step is the rollout's largest allocation
    return logits


def hold(logits: Tensor, pad_token_id: int, given: tuple[Tensor, Tensor] | None = None, past: Tensor | None = None,
         repeat_block: RepeatBlock | None = None) -> Tensor:
    """What a rollout does to rounding logits (B, N, V), possibly in place: given slots held (F1), the length held
    (L2), adjacent repeats blocked (B1), in that order."""
    if given is not None:
        logits = hold_given(logits, *given)
    if past is not None:
        logits = hold_length(logits, past, pad_token_id)
    if repeat_block is not None:
        logits = block_adjacent_repeats(logits, pad_token_id, repeat_block.punctuation, repeat_block.same_word,
                                        inplace=True)
    return logits


class Rollout:
    """One call's x0-estimate policy and its state, built from the model and a :class:`GenerationConfig`.

    It holds the prompt (and, for a cached or encoded prompt (``prompt_attention``), its keys and values, computed
    once), the length in force (``lengths`` (B,), L2: the denoiser is told it and the estimate holds it), the given
    slots of a template (``given`` = (ids (B, N), given (B, N)), F1), what the repeat block reads of the tokenizer
    (B1, used when the settings block repeats), and the self-conditioning input: the estimate of the last
    *accepted* step, which ``commit()`` (the sampler's per-step callback) makes current, so a rejected adaptive
    trial or a solver's intermediate stage never feeds the next step.

    ``rollout(z, t)`` is f_theta as a sampler sees it (126): the denoiser reads the state at the condition-enhanced
    time (C1), its logits are held as above and sharpened by the temperature, and the estimate is their softmax
    average of the table rows (I1), snapped to the nearest row with ``clamp``.
    """

    def __init__(self, model: "DiffusionLMModel", settings: GenerationConfig, prompt_ids: Tensor, prompt_mask: Tensor,
                 *, lengths: Tensor | None = None, given: tuple[Tensor, Tensor] | None = None,
                 repeat_block: RepeatBlock | None = None):
        self.model, self.settings = model, settings
        self.prompt_ids, self.prompt_mask = prompt_ids, prompt_mask
        self.lengths = lengths
        self.past = past_the_end(lengths, model.config.max_response_length) if lengths is not None else None
        self.given = given
        self.repeat_block = (repeat_block or RepeatBlock()) if settings.block_adjacent_repeats else None
        self.written = None  # (B, N): with a length held, only the slots before it are rounded and interpolated
        if self.past is not None:
            self.written = ~self.past
            self.slot_rows = (self.written.reshape(-1).cumsum(0) - 1).view_as(self.past).masked_fill(self.past, -1)
            self.written_given = None if given is None else (given[0][self.written], given[1][self.written])
        self.cache = model.encode_prompt(prompt_ids, prompt_mask)
        self.previous: Tensor | None = None
        self.latest: Tensor | None = None
        self.last_confidence: Tensor | None = None  # (B, N) of the final rounding, for refinement (M1)

    def without_prompt(self) -> "Rollout":
        """The same policy with the prompt dropped and a self-conditioning state of its own (the unconditional
        branch of classifier-free guidance, (62))."""
        return Rollout(self.model, self.settings, self.prompt_ids, torch.zeros_like(self.prompt_mask),
                       lengths=self.lengths, given=self.given, repeat_block=self.repeat_block)

    def model_time(self, t: Tensor) -> Tensor:
        """(C1) the time the denoiser is told for a state at ``t``."""
        return condition_enhanced_time(self.model.schedule, t, self.settings.log_snr_offset)

    def hold(self, logits: Tensor) -> Tensor:
        """Rounding logits with this rollout's given slots, length and repeat block held (possibly in place)."""
        return hold(logits, self.model.config.pad_token_id, self.given, self.past, self.repeat_block)

    def sharpened(self, logits: Tensor) -> Tensor:
        """Held logits divided by the temperature, in place: what the estimate is the softmax of (I1)."""
        logits = self.hold(logits)
        return logits if self.settings.temperature == 1.0 else logits.div_(self.settings.temperature)

    def estimate(self, logits: Tensor) -> Tensor:
        """(I1) the estimate sampling forms from rounding logits (B, N, V), which it may edit in place."""
        return self.model.interpolate(self.sharpened(logits))

    def hold_written(self, logits: Tensor) -> Tensor:
        """``hold`` for the packed logits (M, V) of the written slots (``self.written``, row-major), in place: the
        same numbers as ``hold`` gives those slots of the (B, N, V) logits, whose other slots it makes one-hot pad
        (L2). The given slots held (F1), pad barred (L2), adjacent repeats blocked (B1)."""
        if self.written_given is not None:
            logits = hold_given(logits, *self.written_given)
        logits[:, self.model.config.pad_token_id] = float("-inf")  # (L2) no pad before the length
        if self.repeat_block is not None:
            logits = block_adjacent_repeats(logits, self.model.config.pad_token_id, self.repeat_block.punctuation,
                                            self.repeat_block.same_word, inplace=True, slot_rows=self.slot_rows)
        return logits

    def _written_logits(self, x: Tensor) -> Tensor:
        """(121) rounding logits (M, V) of the written slots of x (B, N, D), held."""
        return self.hold_written(self.model.rounding_logits(x.float()[self.written]))

    def _sharpened_written(self, logits: Tensor) -> Tensor:
        logits = self.hold_written(logits)
        return logits if self.settings.temperature == 1.0 else logits.div_(self.settings.temperature)

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        """The sampler's x0 estimate (126) of the state z (B, N, D) at t (B,), self-conditioned on the last step's.

        With a length held (L2) the slots past it are pad rows exactly (their held logits are one-hot pad), so only
        the written slots are rounded and interpolated: the same numbers for a fraction of the (B, N, V) work."""
        if self.written is None:
            edit, written = (None if self._holds_nothing() else self.sharpened), None
        else:
            edit, written = self._sharpened_written, self.written
        x0, logits = self.model.predict(self.prompt_ids, self.prompt_mask, z, self.model_time(t), self.previous,
                                        past=self.past, prompt_cache=self.cache, edit_logits=edit, written=written)
        if self.model.config.self_conditioning:
            self.latest = self.model.self_condition_input(x0, self._unpacked(logits))
        return self.model.clamp_to_table(x0) if self.settings.clamp else x0

    def _unpacked(self, logits: Tensor) -> Tensor:
        """Held logits (B, N, V) from those ``predict`` returned: as they are, or (packed (M, V), the written slots
        only) placed at their slots and the length held (L2), one-hot pad past it. Only (S2) reads them."""
        if self.written is None or not self.model.config.belief_self_conditioning:
            return logits
        full = logits.new_zeros((*self.past.shape, logits.shape[-1]))
        full[self.written] = logits
        return hold_length(full, self.past, self.model.config.pad_token_id)

    def commit(self) -> None:
        """Make the latest evaluation's estimate the self-conditioning input of the next step."""
        self.previous = self.latest

    def round(self, x0: Tensor) -> Tensor:
        """(121) token ids (B, N) of an estimate at unit scale, with this rollout's holds."""
        if self.written is None:
            return self.hold(self.model.rounding_logits(x0)).argmax(-1)
        ids = torch.full(self.past.shape, self.model.config.pad_token_id, dtype=torch.long, device=x0.device)
        ids[self.written] = self._written_logits(x0).argmax(-1)
        return ids

    def round_with_confidence(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """``round(x0)`` and each slot's probability of its token under the held rounding logits, (B, N) each."""
        if self.written is None:
            confidence, ids = self.hold(self.model.rounding_logits(x0)).float().softmax(-1).max(-1)
            return ids, confidence
        ids = torch.full(self.past.shape, self.model.config.pad_token_id, dtype=torch.long, device=x0.device)
        confidence = torch.ones(self.past.shape, device=x0.device)  # one-hot pad past the length
        confidence[self.written], ids[self.written] = self._written_logits(x0).float().softmax(-1).max(-1)
        return ids, confidence

    def plain(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The denoiser's own estimate and logits at a state, as training forms it: no offset, no holds, and a
        self-conditioning network fed its own first estimate at the same state (the likelihood bound)."""
        x0, logits = self.model.predict(self.prompt_ids, self.prompt_mask, z, t, past=self.past)
        if self.model.config.self_conditioning:
            x0, logits = self.model.predict(self.prompt_ids, self.prompt_mask, z, t,
                                            self.model.self_condition_input(x0, logits), past=self.past)
        return x0, logits

    def length_score(self, ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(L2) how likely the model rates each response ids (B, N) of this rollout's lengths: log p(n | x_p) plus the
        sum over the slots j < n of log p(y_j | x_p, n), read from the denoiser at t = 1, where the state is pure noise
        and tells it nothing of y. One evaluation per response: a self-conditioning network is read without its
        input, as training reads it for half its examples (docs/benchmarks.md, "Speed of the default call")."""
        model = self.model
        shape = (*ids.shape, model.config.embedding_dim)
        gen_device = generator.device if generator is not None else ids.device
        z = float(model.schedule.sigma(1.0)) * torch.randn(shape, generator=generator, device=gen_device).to(ids.device)
        t = torch.ones(ids.shape[0], device=ids.device)
        out = model.denoiser_output(self.prompt_ids, self.prompt_mask, z, t, past=self.past, prompt_cache=self.cache)
        written = ~self.past
        logits = model.output_logits(out.float()[written])  # (M, V): the written slots only
        log_p = torch.zeros(ids.shape, device=ids.device)  # (B, N), 0 past the length
        log_p[written] = logits.float().log_softmax(-1).gather(-1, ids[written][:, None]).squeeze(-1)
        log_n = model.length_logits(self.prompt_ids, self.prompt_mask).float().log_softmax(-1)
        return log_n.gather(-1, self.lengths[:, None]).squeeze(-1) + log_p.sum(-1)

    def _holds_nothing(self) -> bool:
        return (self.given is None and self.past is None and self.repeat_block is None
                and self.settings.temperature == 1.0)
