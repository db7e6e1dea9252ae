"""Speed-ups that claim to be exact give the same numbers and the same texts as the plain computation they replace.

With a length held (L2), a rollout rounds and interpolates only the slots before each response's length, packed
(M, V) instead of (B, N, V): its estimates, roundings, confidences and length scores must equal those of the full
(B, N, V) logits with the slots past the length one-hot at pad, and a whole call must write the same text.
"""

from __future__ import annotations

import pytest
import torch

from diffusion_lm.text.batching import encode_prompts
from diffusion_lm.text.generation import Controls, generate_ids
from diffusion_lm.text.generation_config import GenerationConfig
from diffusion_lm.text.repeats import RepeatBlock
from diffusion_lm.text.rollout import Rollout

from .text_helpers import WORDS, tiny_model

SETTINGS = [
    GenerationConfig(num_steps=3, eta=1.0),
    GenerationConfig(num_steps=3, eta=1.0, temperature=0.5, block_adjacent_repeats=True),
    GenerationConfig(num_steps=2, method="dpm_solver++", clamp=True, block_adjacent_repeats=True),
]


def _full(rollout: Rollout) -> Rollout:
    """The same rollout on the plain path: full (B, N, V) logits with the length held one-hot at pad."""
    rollout.written = None
    return rollout


def _setup(seed: int = 0):
    model, tok = tiny_model(seed=seed, length_prediction=True)
    with torch.no_grad():  # one word favoured everywhere: repeats to block
        model.denoiser.out.bias.add_(model.embedding_table[tok.convert_tokens_to_ids(WORDS[0])]
                                     / model.config.embedding_scale)
    prompts = [" ".join(WORDS[i:i + 3 + i % 4]) for i in range(6)]
    batch = encode_prompts(tok, prompts, model.config.max_prompt_length)
    lengths = torch.tensor([0, 1, 3, 5, 8, 2])  # none, one, some and every slot written
    return model, tok, batch, lengths


@pytest.mark.parametrize("settings", SETTINGS)
def test_packed_estimates_and_roundings_equal_the_full_ones(settings):
    model, tok, batch, lengths = _setup()
    given_ids = torch.randint(2, 20, (6, 8), generator=torch.Generator().manual_seed(1))
    given = (given_ids, torch.rand(6, 8, generator=torch.Generator().manual_seed(2)) < 0.3)
    z = torch.randn(6, 8, model.config.embedding_dim, generator=torch.Generator().manual_seed(3))
    t = torch.full((6,), 0.7)
    block = RepeatBlock.of(tok)
    for template in (None, given):
        packed = Rollout(model, settings, batch.prompt_ids, batch.prompt_mask, lengths=lengths, given=template,
                         repeat_block=block)
        full = _full(Rollout(model, settings, batch.prompt_ids, batch.prompt_mask, lengths=lengths,
                             given=template, repeat_block=block))
        with torch.no_grad():
            x0 = packed(z, t)
            assert torch.equal(x0, full(z, t))
            assert torch.equal(packed.latest, full.latest)
            assert torch.equal(packed.round(x0), full.round(x0))
            ids, confidence = packed.round_with_confidence(x0)
            want_ids, want_confidence = full.round_with_confidence(x0)
            assert torch.equal(ids, want_ids) and torch.equal(confidence, want_confidence)
            assert (ids[torch.arange(8)[None] >= lengths[:, None]] == model.config.pad_token_id).all()


def test_the_packed_length_score_is_the_full_formula():
    """(L2) log p(n | x_p) + sum_{j < n} log p(y_j | x_p, n) at t = 1, with the full (B, N, V) logits."""
    model, tok, batch, lengths = _setup(seed=1)
    rollout = Rollout(model, GenerationConfig(), batch.prompt_ids, batch.prompt_mask, lengths=lengths)
    ids = torch.randint(2, 20, (6, 8), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        score = rollout.length_score(ids, torch.Generator().manual_seed(5))
        z = float(model.schedule.sigma(1.0)) * torch.randn((6, 8, model.config.embedding_dim),
                                                            generator=torch.Generator().manual_seed(5))
        logits = model.predict(batch.prompt_ids, batch.prompt_mask, z, torch.ones(6), past=rollout.past)[1]
        log_p = logits.log_softmax(-1).gather(-1, ids[..., None]).squeeze(-1).masked_fill(rollout.past, 0.0)
        log_n = model.length_logits(batch.prompt_ids, batch.prompt_mask).log_softmax(-1)
    want = log_n.gather(-1, lengths[:, None]).squeeze(-1) + log_p.sum(-1)
    torch.testing.assert_close(score, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("settings", SETTINGS + [GenerationConfig(num_steps=2, refine_iterations=2, refine_steps=1)])
def test_a_call_writes_the_same_ids_on_the_packed_and_the_full_path(settings, monkeypatch):
    model, tok, batch, _ = _setup(seed=2)

    def run():
        return generate_ids(model, batch, settings.updated(length_candidates=3, length_candidate_ratio=0.0),
                            Controls(repeat_block=RepeatBlock.of(tok)), generator=torch.Generator().manual_seed(7))

    packed = run()
    original = Rollout.__init__
    monkeypatch.setattr(Rollout, "__init__", lambda self, *a, **k: (original(self, *a, **k), _full(self))[0])
    assert torch.equal(run(), packed)
    assert (packed != model.config.pad_token_id).any()
