"""objective.hold_length (H1): training rounds as sampling does, the slots past the length held at pad."""

import math

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, build_model
from diffusion_lm.text.batching import encode_pairs
from diffusion_lm.text.length import past_the_end
from diffusion_lm.text.rollout import hold_length

from .text_helpers import tiny_model, word_tokenizer


def test_held_logits_are_one_hot_pad_past_the_length_and_bar_pad_before():
    """Training holds the length with the rollout's own ``hold_length``, on a copy of the network's logits."""
    logits = torch.randn(2, 5, 7)
    past = past_the_end(torch.tensor([3, 0]), 5)
    held = hold_length(logits.clone(), past, pad_token_id=0)
    assert torch.equal(held[past][:, 0], torch.zeros(int(past.sum())))
    assert torch.isinf(held[past][:, 1:]).all()
    assert torch.isinf(held[~past][:, 0]).all() and torch.equal(held[~past][:, 1:], logits[~past][:, 1:])
    model, tok = tiny_model(objective={"hold_length": True})
    out = model.train()(**_batch(model, tok).as_kwargs(), generator=torch.Generator().manual_seed(0))
    past = past_the_end(torch.tensor([2, 5, 1]), 8)
    assert torch.equal(out.logits[past][:, 0], torch.zeros(int(past.sum())))
    assert torch.isinf(out.logits[past][:, 1:]).all()
    assert torch.isinf(out.logits[~past][:, 0]).all() and torch.isfinite(out.logits[~past][:, 1:]).all()


def _batch(model, tok):
    pairs = [("w1 w2 w3", "w4 w5"), ("w6", "w7 w8 w9 w10 w11"), ("w2 w2", "w3")]
    cfg = model.config
    return encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], cfg.max_prompt_length,
                        cfg.max_response_length)


@pytest.mark.parametrize("hold, expected", [(True, "log(V - 1)"), (False, "log V")])
def test_untrained_rounding_loss_has_its_closed_form(hold, expected):
    """A fresh model's output layer is 0, so its rounding logits (121) are uniform over V: the cross-entropy (123) of
    every written slot is log V, and log(V - 1) with pad barred; held slots cost 0, so the mean over the written
    ones is log(V - 1) with H1 and log V without it."""
    config = DiffusionLMConfig(embedding_dim=16, hidden_size=32, num_heads=4, num_layers=2, max_prompt_length=8,
                               max_response_length=8, objective={"hold_length": hold})
    model, tok = build_model(config, word_tokenizer(), seed=0)
    out = model.train()(**_batch(model, tok).as_kwargs(), generator=torch.Generator().manual_seed(0))
    v = model.config.vocab_size
    assert out.loss_round.item() == pytest.approx(math.log(v - 1) if hold else math.log(v), rel=1e-5)


def test_held_slots_get_no_gradient_and_written_ones_do():
    model, tok = tiny_model(objective={"hold_length": True})
    batch = _batch(model, tok)
    captured = {}

    def keep(module, inputs, output):
        if output.requires_grad:  # the main prediction (the self-conditioning estimate runs without gradients)
            output.retain_grad()
            captured["out"] = output

    hook = model.denoiser.out.register_forward_hook(keep)
    out = model.train()(**batch.as_kwargs(), generator=torch.Generator().manual_seed(0))
    hook.remove()
    (out.loss_x0 + out.loss_round).backward()
    grad = captured["out"].grad.abs().sum(-1)  # (B, N), the last (main) prediction's output
    past = past_the_end(torch.tensor([2, 5, 1]), 8)
    assert torch.equal(grad[past], torch.zeros(int(past.sum())))
    assert (grad[~past] > 0).all()


def test_hold_length_needs_a_length_classifier_and_old_configs_load_without_it():
    with pytest.raises(ValueError, match="needs length_prediction=True"):
        DiffusionLMConfig(length_prediction=False, objective={"hold_length": True})
    saved = DiffusionLMConfig().to_dict()
    saved["objective"].pop("hold_length")
    assert DiffusionLMConfig.from_dict(saved).training_objective.hold_length is False


def test_new_models_hold_the_length_wherever_they_have_a_length_classifier():
    from diffusion_lm import TrainingObjective

    assert DiffusionLMConfig().training_objective.hold_length is True
    assert DiffusionLMConfig(objective=TrainingObjective()).training_objective.hold_length is True
    assert DiffusionLMConfig(length_prediction=False).training_objective.hold_length is False
    assert DiffusionLMConfig(objective={"hold_length": False}).training_objective.hold_length is False
    saved = DiffusionLMConfig().to_dict()
    assert DiffusionLMConfig.from_dict(saved).training_objective.hold_length is True
