"""The text model learns: two acceptance runs from scratch, both marked slow (minutes each). The default suite's
real-text train-then-generate round trip is tests/test_text_steps.py."""

import pytest

from diffusion_lm import DiffusionLMConfig, build_model, train_tokenizer
from diffusion_lm.text.pipeline import DiffusionLMPipeline
from diffusion_lm.text.synthetic import synthetic_pairs

from .text_helpers import exact_match, reverse_pairs, train_steps, word_tokenizer


# ~1-2 min on 2 cores; the default run keeps test_text_steps.py's real-text train-then-generate round trip
@pytest.mark.slow
def test_short_run_learns_to_reverse_words():
    """Train for seconds, then generate: only a model that reads its prompt can reverse it."""
    cfg = DiffusionLMConfig(embedding_dim=16, hidden_size=64, num_heads=4, num_layers=3, mlp_ratio=2.0,
                            max_prompt_length=8, max_response_length=8)
    model, tok = build_model(cfg, word_tokenizer())
    # Reversal is learnt through a sudden transition (positional attention) that lands between ~600 and
    # ~1000 steps depending on the table; at 1200 steps table seeds 0-8 all reach 100% (at 800, seed 0: 7%).
    train_steps(model, tok, reverse_pairs(20_000, seed=1), steps=1200)
    pipe = DiffusionLMPipeline(model, tok)
    held_out = reverse_pairs(100, seed=2)
    assert exact_match(pipe, held_out, num_steps=10, method="ddim") >= 0.8


@pytest.mark.slow
def test_sorting_reaches_90_percent_exact_match_at_20_steps():
    """Issue acceptance: from scratch on CPU, >= 90% exact match at 20 steps with ddim and dpm_solver++.

    Self-conditioning is on: without it this model reaches ~88% with one step but only ~79% at 20 steps
    (its own blurred estimates, fed back through the noisy state, compound); with it ~97% at 20 steps.
    """
    vocab, words = 50, (4, 12)
    train = synthetic_pairs(100_000, "sort", vocab, *words, seed=1)
    held_out = synthetic_pairs(300, "sort", vocab, *words, seed=2)
    assert len(set(held_out) & set(train)) < 5, "held-out prompts must be new"
    tok = train_tokenizer([" ".join(f"w{i}" for i in range(vocab))] * 2, kind="wordlevel", vocab_size=vocab + 10)
    cfg = DiffusionLMConfig(embedding_dim=16, hidden_size=64, num_heads=4, num_layers=4, mlp_ratio=2.0,
                            max_prompt_length=16, max_response_length=16, self_conditioning=True)
    model, tok = build_model(cfg, tok)
    train_steps(model, tok, train, steps=3000)
    pipe = DiffusionLMPipeline(model, tok)
    for method in ("ddim", "dpm_solver++"):
        assert exact_match(pipe, held_out, num_steps=20, method=method) >= 0.9, method
