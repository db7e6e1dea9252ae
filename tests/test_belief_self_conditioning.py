"""belief_self_conditioning (S2): the self-conditioning input also carries the previous estimate's probabilities."""

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, GenerationConfig, build_model
from diffusion_lm.text.rollout import Rollout

from .text_helpers import word_tokenizer


def _model(belief: bool):
    config = DiffusionLMConfig(embedding_dim=4, hidden_size=32, num_heads=4, num_layers=2, max_prompt_length=8,
                               max_response_length=8, belief_self_conditioning=belief)
    return build_model(config, word_tokenizer(), seed=0)[0].eval()


def _perturb(model, skip: str = "denoiser.belief"):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the zero-initialised output layer would make every logit 0
        for name, p in model.named_parameters():
            if not name.startswith(skip):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))


def _inputs(model, b: int = 5, n: int = 8):
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(1, model.config.vocab_size, (b, 5), generator=gen)
    z = torch.randn(b, n, model.config.embedding_dim, generator=gen)
    return prompt, torch.ones_like(prompt, dtype=torch.bool), z, torch.rand(b, generator=gen)


PAST = torch.zeros(5, 8, dtype=torch.bool)


def test_a_fresh_model_with_belief_self_conditioning_is_the_plain_model():
    """The map starts at zero and is built off the random stream: every other weight, and the prediction given the
    same previous estimate, are the plain model's."""
    plain, belief = _model(False), _model(True)
    own = {k: v for k, v in belief.state_dict().items() if not k.startswith("denoiser.belief")}
    assert own.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in own.items())
    _perturb(plain), _perturb(belief)
    prompt, mask, z, t = _inputs(plain)
    x0, logits = plain.predict(prompt, mask, z, t, past=PAST)
    again_plain = plain.predict(prompt, mask, z, t, plain.self_condition_input(x0, logits), past=PAST)[1]
    again_belief = belief.predict(prompt, mask, z, t, belief.self_condition_input(x0, logits), past=PAST)[1]
    assert torch.allclose(again_plain, again_belief, atol=1e-6)


def test_the_input_is_the_estimate_then_its_probabilities_read_through_the_map():
    """(S2) h_j = W_in [z_j, x0_j] + B softmax(l_j) (+ the length marker), with x0 = softmax(l) E (I1)."""
    model = _model(True)
    _perturb(model, skip="nothing")
    prompt, mask, z, t = _inputs(model)
    x0, logits = model.predict(prompt, mask, z, t, past=PAST)
    previous = model.self_condition_input(x0, logits)
    d, probs = model.config.embedding_dim, torch.softmax(logits, -1)
    table = model.embedding_table / model.config.embedding_scale
    assert torch.allclose(previous[..., :d], probs @ table, atol=1e-5)
    assert torch.allclose(previous[..., d:], probs, atol=1e-6)
    net = model.denoiser
    past = torch.zeros(z.shape[:2], dtype=torch.bool)
    expected = (net.response_in(torch.cat([z, x0], -1)) + probs @ net.belief.weight.T
                + net.end_marker(past.long()))
    assert torch.allclose(net._response_inputs(z, previous, past), expected, atol=1e-5)
    assert not torch.allclose(net._response_inputs(z, previous, past),
                              net._response_inputs(z, torch.cat([x0, torch.zeros_like(probs)], -1), past))


def test_the_rollout_feeds_back_the_probabilities_of_its_held_sharpened_logits():
    """A rollout with a length held rounds only the written slots; what it feeds back past the length is one-hot
    pad, and before it the softmax of the held logits over the temperature, as the unpacked path gives."""
    model = _model(True)
    _perturb(model, skip="nothing")
    prompt, mask, z, t = _inputs(model)
    lengths = torch.tensor([8, 3, 5, 1, 0])
    rollout = Rollout(model, GenerationConfig(temperature=0.5), prompt, mask, lengths=lengths)
    rollout(z, t)
    _, logits = model.predict(prompt, mask, z, rollout.model_time(t), past=rollout.past,
                              edit_logits=rollout.sharpened)
    d = model.config.embedding_dim
    assert torch.allclose(rollout.latest[..., d:], torch.softmax(logits, -1), atol=1e-5)
    past = rollout.past
    assert torch.equal(rollout.latest[past][:, d:].argmax(-1), torch.zeros(int(past.sum()), dtype=torch.long))


def test_belief_self_conditioning_needs_self_conditioning():
    with pytest.raises(ValueError, match="belief_self_conditioning .* needs self_conditioning=True"):
        DiffusionLMConfig(self_conditioning=False, belief_self_conditioning=True)
