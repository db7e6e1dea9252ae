"""learned_logits (O1): a learnt full-rank term added to the rounding logits (121) of the denoiser's output."""

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, DiffusionLMModel, build_model
from diffusion_lm.text.configuration import LEARNED_LOGITS_MAX_VOCAB

from .text_helpers import word_tokenizer


def _model(learned: bool, rounding_temperature: float = 1.0):
    config = DiffusionLMConfig(embedding_dim=4, hidden_size=32, num_heads=4, num_layers=2, max_prompt_length=8,
                               max_response_length=8, learned_logits=learned,
                               rounding_temperature=rounding_temperature)
    return build_model(config, word_tokenizer(), seed=0)[0].eval()


def _inputs(model, b: int = 6, n: int = 8):
    gen = torch.Generator().manual_seed(1)
    v = model.config.vocab_size
    prompt = torch.randint(1, v, (b, 5), generator=gen)
    z = torch.randn(b, n, model.config.embedding_dim, generator=gen)
    t = torch.rand(b, generator=gen)
    past = torch.zeros(b, n, dtype=torch.bool)
    return prompt, torch.ones_like(prompt, dtype=torch.bool), z, t, past


def _perturb(model, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the zero-initialised output layers would make every logit 0
        for name, p in model.named_parameters():
            if not name.startswith("denoiser.logit_head"):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))


def test_a_fresh_model_with_learned_logits_is_the_plain_model():
    """The head starts at zero and is built off the random stream: every other weight, and every output, is the
    plain model's of the same seed."""
    plain, learned = _model(False), _model(True)
    own = {k: v for k, v in learned.state_dict().items() if not k.startswith("denoiser.logit_head")}
    assert own.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in own.items())
    assert torch.count_nonzero(learned.denoiser.logit_head.weight) == 0
    _perturb(plain), _perturb(learned)
    prompt, mask, z, t, past = _inputs(plain)
    x_plain, logits_plain = plain.predict(prompt, mask, z, t, past=past)
    x_learned, logits_learned = learned.predict(prompt, mask, z, t, past=past)
    assert torch.allclose(logits_learned, logits_plain, atol=1e-6) and torch.allclose(x_learned, x_plain, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_learned_term_adds_to_the_table_logits(temperature):
    """(O1) logits = (out . E_w) / tau (121) + (W h + b)_w, with h the state the output layer reads; the estimate is
    still softmax(logits) @ E (I1)."""
    model = _model(True, temperature)
    _perturb(model)
    with torch.no_grad():
        model.denoiser.logit_head.weight.normal_(generator=torch.Generator().manual_seed(2))
        model.denoiser.logit_head.bias.normal_(generator=torch.Generator().manual_seed(3))
    seen = {}
    model.denoiser.out.register_forward_hook(lambda m, i, o: seen.update(h=i[0], out=o))
    prompt, mask, z, t, past = _inputs(model)
    x0, logits = model.predict(prompt, mask, z, t, past=past)
    table = model.embedding_table / model.config.embedding_scale
    head = model.denoiser.logit_head
    expected = seen["out"] @ table.T / temperature + seen["h"] @ head.weight.T + head.bias
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(x0, torch.softmax(expected, -1) @ table, atol=1e-5)


def test_learned_logits_are_not_limited_to_rank_d():
    """Dot products with a D-wide table span at most D directions of the V logits; with the learnt term they span
    more (D = 4 here, V = the word tokenizer's vocabulary)."""
    plain, learned = _model(False), _model(True)
    _perturb(plain), _perturb(learned, seed=0)
    with torch.no_grad():
        learned.denoiser.logit_head.weight.normal_(generator=torch.Generator().manual_seed(2))
    prompt, mask, z, t, past = _inputs(plain, b=16)
    d = plain.config.embedding_dim
    v = plain.config.vocab_size
    rank_plain = torch.linalg.matrix_rank(plain.predict(prompt, mask, z, t, past=past)[1].reshape(-1, v))
    rank_learned = torch.linalg.matrix_rank(learned.predict(prompt, mask, z, t, past=past)[1].reshape(-1, v))
    assert rank_plain <= d < rank_learned


def test_learned_logits_train_and_refuse_an_encoder_denoiser():
    model = _model(True)
    model.train()
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(1, model.config.vocab_size, (3, 5), generator=gen)
    response = torch.randint(1, model.config.vocab_size, (3, 8), generator=gen)
    out = model(prompt, torch.ones_like(prompt, dtype=torch.bool), response, generator=gen)
    out.loss.backward()
    assert model.denoiser.logit_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="learned_logits is a DiffusionTransformer option"):
        DiffusionLMConfig(embedding_source="some-encoder", encoder_init=True, learned_logits=True)


def test_packed_written_slots_match_the_full_prediction():
    """The rollout rounds only the written slots (``written``): the same logits and estimates there, the pad row past
    the length, with the learnt term in the output."""
    model = _model(True)
    _perturb(model)
    with torch.no_grad():
        model.denoiser.logit_head.weight.normal_(generator=torch.Generator().manual_seed(2))
    prompt, mask, z, t, _ = _inputs(model)
    past = torch.arange(8)[None] >= torch.tensor([8, 3, 5, 1, 0, 6])[:, None]
    x_full, logits_full = model.predict(prompt, mask, z, t, past=past)
    x_packed, logits_packed = model.predict(prompt, mask, z, t, past=past, written=~past)
    assert x_packed.shape == x_full.shape
    assert torch.allclose(logits_packed, logits_full[~past], atol=1e-5)
    assert torch.allclose(x_packed[~past], x_full[~past], atol=1e-5)
    pad = model.embedding_table[model.config.pad_token_id] / model.config.embedding_scale
    assert torch.equal(x_packed[past], pad.expand(int(past.sum()), -1))


def test_a_saved_model_with_learned_logits_loads_and_generates_the_same(tmp_path):
    from diffusion_lm import DiffusionLMPipeline

    from .text_helpers import tiny_model

    pipe = DiffusionLMPipeline(*tiny_model(seed=3, learned_logits=True))
    assert torch.count_nonzero(pipe.model.denoiser.logit_head.weight) > 0  # perturbed: the term is in play
    pipe.save_pretrained(tmp_path / "model")
    loaded = DiffusionLMPipeline.from_pretrained(tmp_path / "model")
    assert loaded.model.config.learned_logits
    prompts = ["w1 w2 w3", "w4"]
    first = pipe(prompts, num_steps=3, seed=0)
    again = loaded(prompts, num_steps=3, seed=0)
    assert first == again and all(isinstance(text, str) for text in first)


def test_unset_learned_logits_are_decided_by_the_vocabulary_when_the_model_is_built():
    """On up to LEARNED_LOGITS_MAX_VOCAB tokens, off above; a value set by the user is kept at any vocabulary."""
    small = dict(embedding_dim=4, hidden_size=32, num_heads=4, num_layers=1, max_prompt_length=4,
                 max_response_length=4)
    assert DiffusionLMConfig(**small).learned_logits is None  # not yet known: the vocabulary comes with the table
    for vocab, expected in ((LEARNED_LOGITS_MAX_VOCAB, True), (LEARNED_LOGITS_MAX_VOCAB + 1, False)):
        model = DiffusionLMModel(DiffusionLMConfig(vocab_size=vocab, **small))
        assert model.config.learned_logits is expected
        assert (model.denoiser.logit_head is not None) is expected
        assert DiffusionLMConfig.from_dict(model.config.to_dict()).learned_logits is expected  # saved as decided
    big = DiffusionLMModel(DiffusionLMConfig(vocab_size=4000, learned_logits=True, **small))
    assert big.config.learned_logits and big.denoiser.logit_head.out_features == 4000
    assert build_model(DiffusionLMConfig(**small), word_tokenizer())[0].config.learned_logits  # 22 tokens


def test_learned_logits_are_off_for_encoder_denoisers_and_checkpoints_saved_before_them():
    assert DiffusionLMConfig(embedding_source="some-encoder", encoder_init=True).learned_logits is False
    saved = DiffusionLMConfig(learned_logits=False).to_dict()
    saved.pop("learned_logits")  # a config.json written before O1
    assert not DiffusionLMConfig.from_dict(saved).learned_logits
