"""response_positions="proportional" (P1): the n written response slots span the prompt's m rotary positions."""

import pytest
import torch

from diffusion_lm.text.length import past_the_end

from .text_helpers import tiny_model


def _same_weights(**overrides):
    plain, _ = tiny_model(seed=3, response_positions="after_prompt", **overrides)
    proportional, _ = tiny_model(seed=3, response_positions="proportional", **overrides)
    proportional.load_state_dict(plain.state_dict())
    return plain.denoiser, proportional.denoiser


def _inputs(prompt_lengths, response_lengths):
    gen = torch.Generator().manual_seed(1)
    b = len(prompt_lengths)
    prompt = torch.randn(b, 8, 16, generator=gen)
    mask = torch.arange(8)[None] < torch.tensor(prompt_lengths)[:, None]
    z, sc = torch.randn(b, 8, 16, generator=gen), torch.randn(b, 8, 16, generator=gen)
    return prompt, mask, z, torch.rand(b, generator=gen), sc, past_the_end(torch.tensor(response_lengths), 8)


def test_response_positions_follow_the_closed_form():
    den = tiny_model(response_positions="proportional")[0].denoiser
    mask = torch.arange(8)[None] < torch.tensor([[6], [3], [0]])  # m = 6, 3 and an empty (dropped) prompt
    past = past_the_end(torch.tensor([3, 6, 4]), 8)  # n = 3, 6, 4
    pos_p, pos_r = den._positions(8, 8, mask.device, mask, past)
    j = torch.arange(8, dtype=torch.float32)
    # (P1); an empty prompt keeps m / n = 1
    expected = torch.stack([8 + (j + 0.5) * 6 / 3 - 0.5, 8 + (j + 0.5) * 3 / 6 - 0.5, 8 + j])
    torch.testing.assert_close(pos_r, expected)
    assert torch.equal(pos_p, torch.arange(8))


@pytest.mark.parametrize("prompt_attention", ["joint", "cached"])
def test_equal_lengths_give_the_plain_model_and_unequal_ones_do_not(prompt_attention):
    plain, proportional = _same_weights(prompt_attention=prompt_attention, self_conditioning=True)
    prompt, mask, z, t, sc, past = _inputs([5, 3, 8], [5, 3, 8])

    def run(den, mask, past):
        if prompt_attention == "cached":
            return den(None, mask, z, t, sc, prompt_cache=den.encode_prompt(prompt, mask), past=past)
        return den(prompt, mask, z, t, sc, past=past)

    torch.testing.assert_close(run(proportional, mask, past), run(plain, mask, past), rtol=1e-5, atol=1e-5)
    longer = past_the_end(torch.tensor([2, 6, 4]), 8)
    assert not torch.allclose(run(proportional, mask, longer), run(plain, mask, longer), atol=1e-4)


def test_proportional_positions_are_checked():
    from diffusion_lm import DiffusionLMConfig

    with pytest.raises(ValueError, match="length_prediction=True"):
        DiffusionLMConfig(response_positions="proportional", length_prediction=False)
    with pytest.raises(ValueError, match="position_embedding='rotary'"):
        DiffusionLMConfig(response_positions="proportional", position_embedding="learned")
    with pytest.raises(ValueError, match="response_positions must be one of"):
        DiffusionLMConfig(response_positions="aligned")


def test_a_config_saved_before_the_option_loads_after_prompt():
    from diffusion_lm import DiffusionLMConfig

    saved = DiffusionLMConfig().to_dict()
    saved.pop("response_positions")
    assert DiffusionLMConfig.from_dict(saved).response_positions == "after_prompt"


def test_new_models_take_proportional_positions_where_they_apply_and_keep_them_when_saved(tmp_path):
    from diffusion_lm import DiffusionLMConfig

    assert DiffusionLMConfig().response_positions == "proportional"
    assert DiffusionLMConfig(length_prediction=False).response_positions == "after_prompt"
    assert DiffusionLMConfig(position_embedding="learned").response_positions == "after_prompt"
    DiffusionLMConfig().save_pretrained(tmp_path)  # config.json as a checkpoint holds it
    loaded = DiffusionLMConfig.from_pretrained(tmp_path)
    assert loaded.response_positions == "proportional" and loaded.training_objective.hold_length is True
