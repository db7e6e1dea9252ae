"""prompt_attention="cached": the prompt's keys and values are computed once; the result is the same function."""

import pytest
import torch

from diffusion_lm.text.batching import PairBatch
from diffusion_lm.text.length import past_the_end

from .text_helpers import generate, tiny_model


@pytest.mark.parametrize("position_embedding", ["rotary", "learned"])
def test_cached_prompt_gives_the_joint_pass_output(position_embedding):
    model, _ = tiny_model(prompt_attention="cached", self_conditioning=True, position_embedding=position_embedding)
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randn(3, 8, 16, generator=gen)
    mask = torch.tensor([[True] * 8, [True] * 3 + [False] * 5, [False] * 8])  # full, partial, none (unconditional)
    z, sc, t = torch.randn(3, 8, 16, generator=gen), torch.randn(3, 8, 16, generator=gen), torch.rand(3, generator=gen)
    den, past = model.denoiser, past_the_end(torch.tensor([8, 5, 0]), 8)  # the length marker (L2) reaches both paths
    joint = den(prompt, mask, z, t, sc, past=past)
    cache = den.encode_prompt(prompt, mask)
    torch.testing.assert_close(den(None, mask, z, t, sc, prompt_cache=cache, past=past), joint, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(joint).all()
    assert not torch.allclose(den(None, mask, z, t, sc, prompt_cache=cache,
                                  past=past_the_end(torch.tensor([2, 2, 2]), 8)), joint)
    other = den(prompt, mask, torch.randn(3, 8, 16, generator=gen), t, sc, past=past)
    assert not torch.allclose(other, joint), "the response must matter"


def test_prompt_slots_ignore_the_response_and_the_time():
    """What makes the cache valid: a prompt slot's states depend on the prompt alone."""
    model, _ = tiny_model(prompt_attention="cached")
    prompt, mask = torch.randn(2, 8, 16), torch.ones(2, 8, dtype=torch.bool)
    captured = []
    hook = model.denoiser.blocks[-1].register_forward_hook(lambda m, i, o: captured.append(o[:, :8].clone()))
    model.denoiser(prompt, mask, torch.randn(2, 8, 16), torch.full((2,), 0.9),
                   past=past_the_end(torch.tensor([8, 3]), 8))
    model.denoiser(prompt, mask, torch.randn(2, 8, 16), torch.full((2,), 0.1),
                   past=past_the_end(torch.tensor([1, 6]), 8))
    hook.remove()
    torch.testing.assert_close(captured[0], captured[1], rtol=0, atol=0)


@pytest.mark.parametrize("prompt_attention", ["cached", "encoder_decoder"])
def test_generation_with_and_without_the_cache_is_the_same(prompt_attention):
    """Cached (the joint blocks' prompt keys and values) or encoded (E2): once per call, as computing it every step."""
    model, tok = tiny_model(prompt_attention=prompt_attention, self_conditioning=True)
    batch = tok(["w1 w2 w3", "w4"], padding=True, return_tensors="pt")
    prompts = PairBatch(batch["input_ids"], batch["attention_mask"].bool())
    calls = []
    original = model.encode_prompt
    model.encode_prompt = lambda *a: calls.append(1) or original(*a)
    cached = generate(model, prompts, num_steps=6, generator=torch.Generator().manual_seed(0))
    assert calls == [1], "the prompt is encoded once per generation"
    model.encode_prompt = lambda *a: None  # every step recomputes the prompt (the joint pass)
    plain = generate(model, prompts, num_steps=6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cached, plain)


def test_cached_prompt_attention_is_checked():
    from diffusion_lm import DiffusionLMConfig

    with pytest.raises(ValueError, match="prompt_attention must be one of"):
        DiffusionLMConfig(prompt_attention="cross")
    model, _ = tiny_model(prompt_attention="joint")
    with pytest.raises(ValueError, match="needs a model built with prompt_attention='cached'"):
        model.denoiser.encode_prompt(torch.randn(1, 8, 16), torch.ones(1, 8, dtype=torch.bool))
