"""Training's self-conditioning input is evaluated only for the examples that get it (the rest get zeros)."""

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, build_model
from diffusion_lm.text.length import past_the_end
from diffusion_lm.text.rollout import hold_length

from .text_helpers import word_tokenizer


def _model(belief: bool):
    config = DiffusionLMConfig(embedding_dim=4, hidden_size=32, num_heads=4, num_layers=2, max_prompt_length=8,
                               max_response_length=8, belief_self_conditioning=belief)
    model = build_model(config, word_tokenizer(), seed=0)[0]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # zero-initialised output layers would make every estimate the same
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return model.train()


@pytest.mark.parametrize("belief", [False, True])
def test_the_subset_input_is_the_full_batch_estimate_where_chosen_and_zero_elsewhere(belief):
    model = _model(belief)
    b, n = 6, model.config.max_response_length
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(1, model.config.vocab_size, (b, 5), generator=gen)
    mask = torch.ones_like(prompt, dtype=torch.bool)
    z = torch.randn(b, n, model.config.embedding_dim, generator=gen)
    t = torch.rand(b, generator=gen)
    past = past_the_end(torch.tensor([1, 3, 8, 5, 2, 7]), n)
    use = torch.tensor([True, False, True, True, False, False])
    pad = model.config.pad_token_id
    calls = []
    predict = model.predict
    model.predict = lambda p, *a, **k: calls.append(p.shape[0]) or predict(p, *a, **k)
    got = model._self_condition_subset(prompt, mask, z, t, past, use, hold=True)
    model.predict = predict
    assert calls == [int(use.sum())]  # one evaluation, of the chosen rows only
    with torch.no_grad():  # the definition: the model's estimate with the length held (H1), on the whole batch
        full = model.self_condition_input(*model.predict(prompt, mask, z, t, past=past,
                                                         edit_logits=lambda lg: hold_length(lg, past, pad)))
    assert got.shape == full.shape
    assert torch.allclose(got[use], full[use], atol=1e-5)
    assert torch.equal(got[~use], torch.zeros_like(got[~use]))


def test_no_example_chosen_costs_no_evaluation():
    model = _model(False)
    calls = []
    predict = model.predict
    model.predict = lambda *a, **k: calls.append(1) or predict(*a, **k)
    z = torch.randn(3, 8, 4)
    out = model._self_condition_subset(torch.ones(3, 5, dtype=torch.long), torch.ones(3, 5, dtype=torch.bool), z,
                                       torch.rand(3), None, torch.zeros(3, dtype=torch.bool), hold=False)
    assert calls == [] and torch.equal(out, torch.zeros(3, 8, 4))
