"""time_modulation="shared" (T1, adaLN-single): one regression of the time embedding for every block, plus a learnt
offset per block, in place of each block's own."""

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, build_model
from diffusion_lm.text.length import past_the_end

from .text_helpers import tiny_model, word_tokenizer


def _tie(per_block, shared) -> None:
    """Load the shared model's weights into the per-block model so that block i's own modulation is the shared
    one plus offset i: W_i = W, b_i = b + o_i. Every other weight is copied by name."""
    state = shared.state_dict()
    with torch.no_grad():
        for name, tensor in per_block.state_dict().items():
            if name in state:
                tensor.copy_(state[name])
        weight, bias = shared.denoiser.shared_ada[-1].weight, shared.denoiser.shared_ada[-1].bias
        for own, with_offset in zip(per_block.denoiser.blocks, shared.denoiser.blocks):
            own.ada[-1].weight.copy_(weight)
            own.ada[-1].bias.copy_(bias + with_offset.ada_offset)


@pytest.mark.parametrize("prompt_attention", ["joint", "cached", "encoder_decoder"])
@pytest.mark.parametrize("per_slot_times", [False, True])
def test_shared_modulation_is_the_per_block_one_with_tied_weights(prompt_attention, per_slot_times):
    """mods_i(c) = W c' + b + o_i (T1) is the per-block form with W_i = W and b_i = b + o_i, so both give one output;
    untied, they differ."""
    shared, _ = tiny_model(seed=1, time_modulation="shared", prompt_attention=prompt_attention, self_conditioning=True)
    per_block, _ = tiny_model(seed=2, prompt_attention=prompt_attention, self_conditioning=True)
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randn(3, 8, 16, generator=gen)
    mask = torch.tensor([[True] * 8, [True] * 3 + [False] * 5, [True] * 8])
    z, sc = torch.randn(3, 8, 16, generator=gen), torch.randn(3, 8, 16, generator=gen)
    t = torch.rand(3, 8, generator=gen) if per_slot_times else torch.rand(3, generator=gen)
    past = past_the_end(torch.tensor([8, 5, 2]), 8)
    expected = shared.denoiser(prompt, mask, z, t, sc, past=past)
    assert not torch.allclose(per_block.denoiser(prompt, mask, z, t, sc, past=past), expected)
    _tie(per_block, shared)
    torch.testing.assert_close(per_block.denoiser(prompt, mask, z, t, sc, past=past), expected, rtol=1e-5, atol=1e-5)
    if prompt_attention == "cached":
        cache = shared.denoiser.encode_prompt(prompt, mask)
        torch.testing.assert_close(shared.denoiser(None, mask, z, t, sc, prompt_cache=cache, past=past), expected,
                                   rtol=1e-5, atol=1e-5)


def test_shared_modulation_saves_the_per_block_regressions():
    """L blocks of width H: the per-block form has L (6H^2 + 6H) modulation weights, the shared one 6H^2 + 6H + L 6H,
    (L - 1) 6H^2 - 6H fewer; and every block still starts as the identity (all modulations zero). An encoder-decoder
    (E2) has L - L_e decoder blocks of 9H modulations each, and its encoder blocks have no regression to share."""
    layers, hidden = 3, 32
    for attention, blocks, width in (("joint", layers, 6), ("encoder_decoder", layers - 1, 9)):
        counts = {}
        for mode in ("per_block", "shared"):
            model, _ = tiny_model(time_modulation=mode, num_layers=layers, hidden_size=hidden,
                                  prompt_attention=attention)
            counts[mode] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert counts["per_block"] - counts["shared"] == (blocks - 1) * width * hidden**2 - width * hidden


def test_shared_modulation_starts_each_block_as_the_identity():
    model, _ = build_model(DiffusionLMConfig(embedding_dim=16, hidden_size=32, num_heads=4, num_layers=2,
                                             max_prompt_length=8, max_response_length=8, time_modulation="shared"),
                           word_tokenizer(), seed=0)
    den = model.denoiser
    assert torch.count_nonzero(den.shared_ada[-1].weight) == 0 and torch.count_nonzero(den.shared_ada[-1].bias) == 0
    assert all(torch.count_nonzero(block.ada_offset) == 0 and block.ada is None for block in den.blocks)


def test_time_modulation_is_checked_and_old_configs_load_per_block():
    with pytest.raises(ValueError, match="time_modulation must be one of"):
        DiffusionLMConfig(time_modulation="global")
    old = DiffusionLMConfig().to_dict()
    del old["time_modulation"]
    assert DiffusionLMConfig.from_dict(old).time_modulation == "per_block"
