"""prompt_attention="encoder_decoder" (E2, SeqDiffuSeq): the prompt encoded once by blocks of its own, the response
denoised by decoder blocks that cross-attend to it. (Generation encoding the prompt once: test_prompt_cache.py.)"""

import math

import pytest
import torch
import torch.nn.functional as F

from diffusion_lm import DiffusionLMConfig, DiffusionLMModel
from diffusion_lm.text.blocks import apply_rotary, rotary_tables
from diffusion_lm.text.length import past_the_end

from .text_helpers import tiny_model


def _inputs(seed=0, b=3):
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randn(b, 8, 16, generator=gen)
    mask = torch.tensor([[True] * 8, [True] * 3 + [False] * 5, [False] * 8])[:b]  # full, partial, none
    z, sc, t = torch.randn(b, 8, 16, generator=gen), torch.randn(b, 8, 16, generator=gen), torch.rand(b, generator=gen)
    return prompt, mask, z, sc, t, past_the_end(torch.tensor([8, 5, 3])[:b], 8)


def _reference_decoder_block(block, x, mods, rotary_q, encoded, rotary_k, memory_mask):
    """The block written out: x += g1 SelfAttn(adaLN(x)); x += g3 softmax(q k^T / sqrt(hd)) v over [null ; encoded];
    x += g2 MLP(adaLN(x))."""
    b, n, hidden = x.shape
    heads = block.attn.heads
    hd = hidden // heads
    s1, c1, g1, s2, c2, g2, s3, c3, g3 = mods.chunk(9, -1)

    def norm(y, shift, scale):
        return F.layer_norm(y, (hidden,), eps=1e-6) * (1 + scale) + shift

    def split(y):
        return y.view(b, y.shape[1], heads, hd).transpose(1, 2)

    def attention(q, k, v, allowed):
        weights = q @ k.transpose(-1, -2) / math.sqrt(hd)
        weights = weights.masked_fill(~allowed, float("-inf")).softmax(-1)
        return (weights @ v).transpose(1, 2).reshape(b, q.shape[2], hidden)

    q, k, v = (norm(x, s1, c1) @ block.attn.qkv.weight.T + block.attn.qkv.bias).chunk(3, -1)
    q, k = apply_rotary(split(q), *rotary_q), apply_rotary(split(k), *rotary_q)
    x = x + g1 * block.attn.proj(attention(q, k, split(v), torch.ones(1, 1, 1, n, dtype=torch.bool)))
    q = apply_rotary(split(block.cross.q(norm(x, s3, c3))), *rotary_q)
    memory = torch.cat([block.cross.null.expand(b, 1, hidden), encoded], 1)
    k, v = (memory @ block.cross.kv.weight.T + block.cross.kv.bias).chunk(2, -1)
    k, v = split(k), split(v)
    k = torch.cat([k[:, :, :1], apply_rotary(k[:, :, 1:], *rotary_k)], 2)
    x = x + g3 * block.cross.proj(attention(q, k, v, memory_mask))
    return x + g2 * block.mlp(norm(x, s2, c2))


def test_decoder_block_is_self_attention_then_attention_over_the_encoded_prompt():
    model, _ = tiny_model(prompt_attention="encoder_decoder", num_layers=3)
    block = model.denoiser.blocks[0]
    gen = torch.Generator().manual_seed(0)
    x, encoded = torch.randn(2, 5, 32, generator=gen), torch.randn(2, 4, 32, generator=gen)
    mods = torch.randn(2, 1, 9 * 32, generator=gen)
    rotary_q, rotary_k = rotary_tables(torch.arange(8, 13), 8), rotary_tables(torch.arange(4), 8)
    memory_mask = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, None, :]
    memory = block.cross.memory(encoded, rotary_k)
    got = block(x, mods, None, rotary_q, memory, memory_mask)
    want = _reference_decoder_block(block, x, mods, rotary_q, encoded, rotary_k, memory_mask)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_encoded_prompt_ignores_the_response_the_time_and_the_padding():
    """What makes encoding once valid: the encoder's output depends on the real prompt tokens alone."""
    model, _ = tiny_model(prompt_attention="encoder_decoder")
    den = model.denoiser
    prompt, mask, z, sc, t, past = _inputs()
    captured = []
    hook = den.encoder[-1].register_forward_hook(lambda m, i, o: captured.append(o.clone()))
    den(prompt, mask, z, t, sc, past=past)
    garbage = prompt.clone()
    garbage[~mask] = torch.randn(int((~mask).sum()), 16)
    den(garbage, mask, torch.randn(3, 8, 16), torch.rand(3), None, past=past_the_end(torch.tensor([1, 2, 7]), 8))
    hook.remove()
    torch.testing.assert_close(captured[0][mask], captured[1][mask], rtol=0, atol=0)
    out = den(prompt, mask, z, t, sc, past=past)
    torch.testing.assert_close(den(garbage, mask, z, t, sc, past=past), out, rtol=0, atol=1e-6)
    assert torch.isfinite(out).all(), "an empty prompt (prompt dropout) still attends to the null slot"


def test_the_prompt_and_the_response_both_condition_the_output():
    model, _ = tiny_model(prompt_attention="encoder_decoder", self_conditioning=True)
    den = model.denoiser
    prompt, mask, z, sc, t, past = _inputs()
    out = den(prompt, mask, z, t, sc, past=past)
    other_prompt = prompt.clone()
    other_prompt[0, 2] += 1.0
    assert (den(other_prompt, mask, z, t, sc, past=past) - out)[0].abs().max() > 1e-4
    assert not torch.allclose(den(prompt, mask, torch.randn(3, 8, 16), t, sc, past=past), out)
    cache = den.encode_prompt(prompt, mask)
    torch.testing.assert_close(den(None, mask, z, t, sc, prompt_cache=cache, past=past), out, rtol=0, atol=0)


def test_an_even_split_has_the_parameters_of_the_joint_model():
    """Two encoder blocks (no time regression) and two decoder blocks (one more attention, 9H modulations) weigh what
    four joint blocks do, within 5%: the option changes the shape, not the size."""
    sizes = {}
    for attention in ("joint", "encoder_decoder"):
        cfg = DiffusionLMConfig(vocab_size=97, embedding_dim=32, hidden_size=128, num_layers=4, num_heads=4,
                                mlp_ratio=2.0, max_prompt_length=16, max_response_length=16, prompt_attention=attention)
        model = DiffusionLMModel(cfg)
        sizes[attention] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if attention == "encoder_decoder":
            assert len(model.denoiser.encoder) == 2 and len(model.denoiser.blocks) == 2
    assert abs(sizes["encoder_decoder"] / sizes["joint"] - 1) < 0.05, sizes


def test_saved_and_loaded_with_its_split(tmp_path):
    model, _ = tiny_model(prompt_attention="encoder_decoder", num_layers=3, encoder_layers=1)
    model.save_pretrained(tmp_path)
    loaded = DiffusionLMModel.from_pretrained(tmp_path).eval()
    assert len(loaded.denoiser.encoder) == 1 and len(loaded.denoiser.blocks) == 2
    prompt, mask, z, sc, t, past = _inputs()
    torch.testing.assert_close(loaded.denoiser(prompt, mask, z, t, sc, past=past),
                               model.denoiser(prompt, mask, z, t, sc, past=past), rtol=0, atol=0)


@pytest.mark.parametrize("settings", [dict(num_layers=1), dict(num_layers=4, encoder_layers=4),
                                      dict(num_layers=4, encoder_layers=0), dict(encoder_init=True,
                                                                                   embedding_source="x")])
def test_impossible_splits_are_refused(settings):
    with pytest.raises(ValueError, match="encoder_layers must be|attends jointly"):
        DiffusionLMConfig(prompt_attention="encoder_decoder", **settings)
