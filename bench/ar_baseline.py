"""The autoregressive baseline shared by the benchmarks: a GPT-2 sized like our model, and its batches."""

from __future__ import annotations

import torch


def gpt2_like(config, vocab_size: int, target_params: int):
    """GPT2LMHeadModel with our depth, heads and MLP ratio; its width is the multiple of 8 * heads whose
    parameter count comes closest to ``target_params``. Token ``vocab_size - 1`` is free for a separator."""
    from transformers import GPT2Config, GPT2LMHeadModel

    best = None
    for width in range(config.num_heads * 8, 4 * config.hidden_size + 1, config.num_heads * 8):
        cfg = GPT2Config(vocab_size=vocab_size, n_positions=config.max_prompt_length + config.max_response_length + 2,
                         n_embd=width, n_layer=config.num_layers, n_head=config.num_heads, n_inner=int(width * config.mlp_ratio),
                         pad_token_id=config.pad_token_id, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)
        params = GPT2LMHeadModel(cfg).num_parameters()
        if best is None or abs(params - target_params) < abs(best[1] - target_params):
            best = (cfg, params)
    return GPT2LMHeadModel(best[0])


def ar_batch(prompts: list[list[int]], responses: list[list[int]], sep: int, pad: int):
    """``prompt SEP response SEP`` right-padded: input ids, attention mask, and labels on the response part only."""
    seqs = [p + [sep] + r + [sep] for p, r in zip(prompts, responses)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, (p, s) in enumerate(zip(prompts, seqs)):
        ids[row, : len(s)] = torch.tensor(s)
        mask[row, : len(s)] = 1
        labels[row, len(p) + 1 : len(s)] = torch.tensor(s[len(p) + 1 :])
    return ids, mask, labels
