"""Small text models and data for the tests."""

from __future__ import annotations

import torch

from diffusion_lm import DiffusionLMConfig, build_model, train_tokenizer
from diffusion_lm.text.synthetic import synthetic_pairs

WORDS = [f"w{i}" for i in range(20)]


def word_tokenizer():
    """A word-level tokenizer over w0..w19 (plus [PAD] = 0, [UNK] = 1)."""
    return train_tokenizer([" ".join(WORDS)] * 3, kind="wordlevel", vocab_size=64)


def tiny_model(seed: int = 0, **overrides):
    """A small random-table model over the word tokenizer, with perturbed weights so outputs are not trivial."""
    settings = dict(embedding_dim=16, hidden_size=32, num_heads=4, num_layers=2, max_prompt_length=8,
                    max_response_length=8)
    settings.update(overrides)
    model, tok = build_model(DiffusionLMConfig(**settings), word_tokenizer(), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the zero-initialised output layer would make every prediction 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval(), tok


def reverse_pairs(n: int, seed: int):
    return synthetic_pairs(n, "reverse", vocab=len(WORDS), seed=seed)


def train_steps(model, tok, pairs, steps: int, batch_size: int = 64, lr: float = 2e-3, seed: int = 0):
    """A plain AdamW loop (warm-up then decay) on prompt/response pairs; returns the model in eval mode."""
    from diffusion_lm.text.batching import encode_pairs

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(pairs), (batch_size,), generator=gen).tolist()
        batch = encode_pairs(tok, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], cfg.max_prompt_length,
                             cfg.max_response_length)
        loss = model(**batch.as_kwargs()).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return model.eval()


def exact_match(pipe, pairs, **kwargs) -> float:
    outputs = pipe([p for p, _ in pairs], batch_size=len(pairs), **kwargs)
    return sum(o == r for o, (_, r) in zip(outputs, pairs)) / len(pairs)


def generate(model, batch, config=None, *, generator=None, noise=None, callback=None, **kwargs):
    """``generate_ids`` with its settings and controls by keyword: GenerationConfig fields update ``config``, the
    rest (``lengths``, ``response_ids``, ``given``, ``classifier``, ``classes``, ``classifier_scale``,
    ``repeat_block``) become its ``Controls``."""
    from diffusion_lm.text.generation import Controls, generate_ids
    from diffusion_lm.text.generation_config import GenerationConfig

    settings = {k: kwargs.pop(k) for k in list(kwargs) if k in GenerationConfig.names()}
    return generate_ids(model, batch, (config or GenerationConfig()).updated(**settings), Controls(**kwargs),
                        generator=generator, noise=noise, callback=callback)
