"""The Section 9 text model: shapes, masks, the frozen table, noise scale, options, transformers integration."""

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, DiffusionLMModel, build_model, minilm_path
from diffusion_lm.text.batching import encode_pairs
from diffusion_lm.text.length import past_the_end

from .text_helpers import reverse_pairs, tiny_model


def _past(b: int):
    """The slots past a length of 5: the default model is length-conditioned (L2) and is told it."""
    return past_the_end(torch.full((b,), 5), 8)


def _batch(tok, n=6, seed=0):
    pairs = reverse_pairs(n, seed)
    return encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)


def test_shapes():
    model, tok = tiny_model()
    batch = _batch(tok)
    b, n, d = 6, 8, 16
    z = torch.randn(b, n, d)
    x0 = model.denoise(batch.prompt_ids, batch.prompt_mask, z, torch.rand(b), past=_past(b))
    assert x0.shape == (b, n, d)
    assert model.rounding_logits(x0).shape == (b, n, model.config.vocab_size)
    out = model(**batch.as_kwargs())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.x0_pred.shape == (b, n, d)


def test_prompt_padding_does_not_leak():
    """Whatever sits in padded prompt slots, and however many there are, nothing changes."""
    model, tok = tiny_model()
    batch = _batch(tok)
    z, t = torch.randn(6, 8, 16, generator=torch.Generator().manual_seed(0)), torch.rand(6)
    ref = model.denoise(batch.prompt_ids, batch.prompt_mask, z, t, past=_past(6))
    garbage = batch.prompt_ids.clone()
    garbage[~batch.prompt_mask] = torch.randint(2, 20, (int((~batch.prompt_mask).sum()),))
    torch.testing.assert_close(model.denoise(garbage, batch.prompt_mask, z, t, past=_past(6)), ref, rtol=0, atol=1e-6)
    wider_ids = torch.cat([batch.prompt_ids, torch.full((6, 2), 7)], 1)
    wider_mask = torch.cat([batch.prompt_mask, torch.zeros(6, 2, dtype=torch.bool)], 1)
    torch.testing.assert_close(model.denoise(wider_ids, wider_mask, z, t, past=_past(6)), ref, rtol=0, atol=1e-6)
    loss = lambda ids: model(ids, batch.prompt_mask, batch.response_ids,
                             generator=torch.Generator().manual_seed(1)).loss
    torch.testing.assert_close(loss(garbage), loss(batch.prompt_ids), rtol=0, atol=1e-6)


def test_the_prompt_does_condition_the_output():
    model, tok = tiny_model()
    batch = _batch(tok)
    z, t = torch.randn(6, 8, 16), torch.rand(6)
    other = batch.prompt_ids.clone()
    other[batch.prompt_mask] = (other[batch.prompt_mask] + 1 - 2) % 20 + 2
    assert (model.denoise(other, batch.prompt_mask, z, t, past=_past(6))
            - model.denoise(batch.prompt_ids, batch.prompt_mask, z, t, past=_past(6))).abs().max() > 1e-3


@pytest.mark.parametrize("hold_length", [False, True])
def test_losses_of_the_interpolated_estimate_are_the_equations(hold_length):
    """(122)-(124) recomputed by hand: with (I1) the rounding loss (123) is the cross-entropy of the network's logits
    (over the response slots), (122) regresses softmax(logits) @ E, and (124) weighs them by the objective's lambdas;
    with (H1) both are per-example means over the written slots, the held ones contributing 0."""
    model, tok = tiny_model(objective={"lambda_x0": 0.7, "lambda_round": 1.3, "hold_length": hold_length})
    batch = _batch(tok)
    out = model(**batch.as_kwargs(), generator=torch.Generator().manual_seed(3))
    table = model.embedding_table / model.config.embedding_scale
    torch.testing.assert_close(out.x0_pred, torch.softmax(out.logits, -1) @ table, rtol=1e-5, atol=1e-6)
    ids = batch.response_ids
    round_per_slot = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), ids, reduction="none")
    x0_per_slot = (out.x0_pred - table[ids]).pow(2).mean(-1)
    written = ids != model.config.pad_token_id
    assert (~written).any() and written.any()
    if hold_length:
        assert torch.equal(round_per_slot[~written], torch.zeros(int((~written).sum())))
        loss_round = (round_per_slot.sum(-1) / written.sum(-1)).mean()
        loss_x0 = (x0_per_slot.sum(-1) / written.sum(-1)).mean()
    else:
        loss_round, loss_x0 = round_per_slot.mean(), x0_per_slot.mean()
    torch.testing.assert_close(out.loss_round, loss_round, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.7 * loss_x0 + 1.3 * loss_round + out.loss_length,
                               rtol=1e-5, atol=1e-6)  # (124) + (L2)


def test_embedding_table_is_frozen_bitwise():
    model, tok = tiny_model()
    model.train()
    before = model.embedding_table.clone()
    assert all(p.data_ptr() != model.embedding_table.data_ptr() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    first = [p.detach().clone() for p in model.parameters()]
    for step in range(3):
        loss = model(**_batch(tok, seed=step).as_kwargs()).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(model.embedding_table, before)
    assert any(not torch.equal(a, b) for a, b in zip(first, model.parameters())), "the denoiser should train"


def test_noise_is_drawn_at_the_table_scale():
    """(118), (125): at t = 1 the noisy response has the RMS of the table, sigma_E, in table units."""
    model, tok = tiny_model(schedule={"type": "vp", "profile": "linear", "beta_min": 0.1, "beta_max": 20.0},
                            t_eps=0.999)
    seen = []
    model.denoiser.register_forward_pre_hook(lambda mod, args: seen.append(args[2].detach()))
    batch = _batch(tok, n=64)
    model(**batch.as_kwargs())
    rms_in_table_units = float(seen[-1].pow(2).mean().sqrt()) * model.config.embedding_scale
    assert rms_in_table_units == pytest.approx(model.config.embedding_scale, rel=0.05)


def test_minilm_table_and_tokenizer():
    model, tok = build_model(DiffusionLMConfig(embedding_source=str(minilm_path()), hidden_size=32, num_heads=2,
                                               num_layers=1))
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(minilm_path())
    table = encoder.get_input_embeddings().weight
    assert torch.equal(model.embedding_table, table.detach())
    assert model.config.vocab_size == 30522 and model.config.embedding_dim == 384
    assert model.config.embedding_scale == pytest.approx(float(table.detach().pow(2).mean().sqrt()), rel=1e-6)
    assert model.config.pad_token_id == tok.pad_token_id == 0
    assert tok("hello world", add_special_tokens=False)["input_ids"] == [7592, 2088]


def test_auto_classes_load_without_remote_code(tmp_path):
    from transformers import AutoConfig, AutoModel

    model, _ = tiny_model()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert isinstance(AutoConfig.from_pretrained(tmp_path), DiffusionLMConfig)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, DiffusionLMModel)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("position_embedding", ["rotary", "learned"])
def test_both_position_embeddings_distinguish_order(position_embedding):
    model, tok = tiny_model(position_embedding=position_embedding)
    ids = torch.tensor([[2, 3, 4]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    z, t = torch.randn(1, 8, 16), torch.rand(1)
    flipped = model.denoise(ids.flip(1), mask, z, t, past=_past(1))
    assert (model.denoise(ids, mask, z, t, past=_past(1)) - flipped).abs().max() > 1e-4


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="max_response_length must be > 0"):
        DiffusionLMConfig(max_response_length=0)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        DiffusionLMConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="prompt_dropout must lie in"):
        DiffusionLMConfig(prompt_dropout=1.0)
    with pytest.raises(ValueError, match="t_eps must lie in"):
        DiffusionLMConfig(objective={"t_eps": 1.0})
    with pytest.raises(ValueError, match="unknown schedule type"):
        DiffusionLMConfig(schedule={"type": "nope"})


def test_batch_shape_errors():
    model, tok = tiny_model()
    batch = _batch(tok)
    with pytest.raises(ValueError, match="response_ids must be"):
        model(batch.prompt_ids, batch.prompt_mask, batch.response_ids[:, :5])
    with pytest.raises(ValueError, match="at most max_prompt_length=8"):
        model(torch.zeros(6, 9, dtype=torch.long), torch.ones(6, 9, dtype=torch.bool), batch.response_ids)


def test_random_table_is_not_the_sampler_noise_stream():
    """Regression: with a shared seed the table rows equalled the starting noise of generation, slot by slot."""
    from diffusion_lm.text.table import random_table

    table = random_table(64, 16, seed=0)
    noise = torch.randn(1, 32, 16, generator=torch.Generator().manual_seed(0))[0]
    noise = noise / noise.pow(2).mean(-1, keepdim=True).sqrt()
    cosine = torch.nn.functional.cosine_similarity(noise, table[:32], dim=-1)
    assert cosine.abs().max() < 0.9


def test_rotary_scores_depend_only_on_relative_position():
    """RoPE: <R(m) q, R(n) k> is a function of n - m, and each rotation keeps the norm."""
    from diffusion_lm.text.blocks import apply_rotary, rotary_tables

    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, 16, generator=gen, dtype=torch.float64).unbind(0)

    def score(m: int, n: int) -> float:
        cos, sin = rotary_tables(torch.tensor([m, n]), 16)
        rq = apply_rotary(q, cos[:1].double(), sin[:1].double())
        rk = apply_rotary(k, cos[1:].double(), sin[1:].double())
        assert torch.allclose(rq.norm(), q.norm()) and torch.allclose(rk.norm(), k.norm())
        return float((rq * rk).sum())

    assert score(3, 7) == pytest.approx(score(10, 14), abs=1e-5)
    assert score(0, 5) == pytest.approx(score(20, 25), abs=1e-5)
    assert abs(score(0, 1) - score(0, 5)) > 1e-3  # and it does depend on the offset
