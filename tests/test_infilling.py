"""Infilling: given response slots are held at their tokens; the rollout fills the rest around them."""

import pytest
import torch

from diffusion_lm.text.batching import PairBatch
from diffusion_lm.text.pipeline import DiffusionLMPipeline
from diffusion_lm.text.templates import encode_template

from .text_helpers import generate, tiny_model


@pytest.fixture(scope="module")
def pipe():
    return DiffusionLMPipeline(*tiny_model(self_conditioning=True))


def test_a_template_with_every_slot_given_returns_the_template(pipe):
    out = pipe(["w1 w2", "w3"], response_template="w5 w6 w7", num_steps=4)
    assert out == ["w5 w6 w7", "w5 w6 w7"]


def test_template_slots_and_pad_after_its_end(pipe):
    tok = pipe.tokenizer
    ids, given = encode_template(tok, "w5 [FILL:2] w7 [FILL]", 8, 0)
    w = tok.convert_tokens_to_ids
    assert ids.tolist() == [w("w5"), 0, 0, w("w7"), 0, 0, 0, 0]
    assert given.tolist() == [True, False, False, True, False, True, True, True]


def test_given_slots_are_exact_rows_in_every_x0_estimate_and_the_output():
    model, tok = tiny_model(self_conditioning=True)
    ids, given = encode_template(tok, "w4 [FILL:3] w9 [FILL:2]", 8, model.config.pad_token_id)
    ids, given = ids[None].expand(2, -1), given[None].expand(2, -1)
    prompt = tok(["w1 w2", "w3"], padding=True, return_tensors="pt")
    batch = PairBatch(prompt["input_ids"], prompt["attention_mask"].bool())
    estimates = []
    out = generate(model, batch, num_steps=5, response_ids=ids, given=given, generator=torch.Generator().manual_seed(0),
                   callback=lambda info: estimates.append(info["x0"]))
    assert torch.equal(out[given], ids[given])
    rows = model.embed(ids).float()
    for x0 in estimates:
        torch.testing.assert_close(x0[given], rows[given], rtol=0, atol=1e-5)
    free = generate(model, batch, num_steps=5, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(free, out), "the template must change the rollout"


def test_template_errors_name_the_problem(pipe):
    with pytest.raises(ValueError, match="takes 10 token slots but the model has 8 response slots"):
        pipe(["w1"], response_template="w1 w2 w3 [FILL:7]")
    with pytest.raises(ValueError, match="2 response templates for 1 prompts"):
        pipe(["w1"], response_template=["w1", "w2"])
    with pytest.raises(ValueError, match="needs both response_ids and given"):
        generate(pipe.model, PairBatch(torch.tensor([[2]]), torch.tensor([[True]])),
                 response_ids=torch.zeros(1, 8, dtype=torch.long))
