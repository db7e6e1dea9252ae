"""The autoregressive peers shared by the benchmarks, sized like our model, and their batches.

- GPT-2 (decoder only): ``prompt SEP response SEP``, the loss on the response.
- BART (encoder-decoder): the prompt into the encoder, ``response EOS`` as the decoder's labels.

Both use our tokenizer plus one free id (``vocab_size - 1``: GPT-2's separator; BART's BOS, EOS and decoder
start), are built from a config (no pretrained weights), train with ``train_peer`` and decode greedily with the
KV cache (``peer_generate``). They share our optimiser, learning rate, batch and steps; BART alone warms up longer
(``peer_warmup``): it is post-LN, and at our lr 2e-3 after 50 warm-up steps it never learns to read the prompt.
"""

from __future__ import annotations

import torch


def gpt2_like(config, vocab_size: int, target_params: int):
    """GPT2LMHeadModel with our depth, heads and MLP ratio; its width is the multiple of 8 * heads whose
    parameter count comes closest to ``target_params``. Token ``vocab_size - 1`` is free for a separator."""
    from transformers import GPT2Config, GPT2LMHeadModel

    best = None
    for width in range(config.num_heads * 8, 4 * config.hidden_size + 1, config.num_heads * 8):
        cfg = GPT2Config(vocab_size=vocab_size, n_positions=config.max_prompt_length + config.max_response_length + 2,
                         n_embd=width, n_layer=config.num_layers, n_head=config.num_heads,
                         n_inner=int(width * config.mlp_ratio),
                         pad_token_id=config.pad_token_id, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)
        params = GPT2LMHeadModel(cfg).num_parameters()
        if best is None or abs(params - target_params) < abs(best[1] - target_params):
            best = (cfg, params)
    return GPT2LMHeadModel(best[0])


PEERS = {"gpt2": "GPT-2", "bart": "BART"}  # short names -> the names reports use


def bart_like(config, vocab_size: int, target_params: int):
    """BartForConditionalGeneration with half our depth in the encoder and half in the decoder (at least one each),
    our heads and MLP ratio; its width is the multiple of 8 * heads whose parameter count comes closest to
    ``target_params`` (``gpt2_like``'s rule). Token ``vocab_size - 1`` is free for BOS, EOS and decoder start."""
    from transformers import BartConfig, BartForConditionalGeneration

    layers, free = max(1, config.num_layers // 2), vocab_size - 1
    best = None
    for width in range(config.num_heads * 8, 4 * config.hidden_size + 1, config.num_heads * 8):
        ffn = int(width * config.mlp_ratio)
        cfg = BartConfig(vocab_size=vocab_size, d_model=width, encoder_layers=layers, decoder_layers=layers,
                         encoder_attention_heads=config.num_heads, decoder_attention_heads=config.num_heads,
                         encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                         max_position_embeddings=max(config.max_prompt_length, config.max_response_length) + 2,
                         pad_token_id=config.pad_token_id, bos_token_id=free, eos_token_id=free,
                         decoder_start_token_id=free, forced_eos_token_id=None)
        params = BartForConditionalGeneration(cfg).num_parameters()
        if best is None or abs(params - target_params) < abs(best[1] - target_params):
            best = (cfg, params)
    return BartForConditionalGeneration(best[0])


def peer_like(kind: str, config, vocab_size: int, target_params: int):
    """The peer ``kind`` (a key of ``PEERS``) sized to ``target_params``."""
    if kind not in PEERS:
        raise ValueError(f"unknown peer {kind!r}; valid: {', '.join(PEERS)}.")
    return (gpt2_like if kind == "gpt2" else bart_like)(config, vocab_size, target_params)


BART_WARMUP_FRACTION = 0.2


def peer_warmup(model, warmup: int, steps: int) -> int:
    """The warm-up steps ``model`` trains with: the shared ``warmup`` for GPT-2; for BART at least a fifth of ``steps``.
    Post-LN BART at lr 2e-3 after 50 warm-up steps stays at the unconditional loss and writes one response for every
    prompt (g2p, 1000 steps: 0% exact match); with 200 it trains (7/50 exact after 300 steps, as at lr 1e-3)."""
    return max(warmup, int(BART_WARMUP_FRACTION * steps)) if model.config.is_encoder_decoder else warmup


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


def seq2seq_batch(prompts: list[list[int]], responses: list[list[int]], eos: int, pad: int):
    """Right-padded prompts and their attention mask (the encoder's), and ``response EOS`` labels (-100 past
    the end)."""
    width, out = max(map(len, prompts)), max(map(len, responses)) + 1
    ids = torch.full((len(prompts), width), pad)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    labels = torch.full((len(prompts), out), -100)
    for row, (p, r) in enumerate(zip(prompts, responses)):
        ids[row, : len(p)] = torch.tensor(p)
        mask[row, : len(p)] = 1
        labels[row, : len(r) + 1] = torch.tensor(r + [eos])
    return ids, mask, labels


def peer_batch(model, prompts: list[list[int]], responses: list[list[int]], sep: int, pad: int) -> dict:
    """The keyword arguments of one training batch for ``model`` (GPT-2 or BART): input_ids, attention_mask, labels."""
    batch = seq2seq_batch if model.config.is_encoder_decoder else ar_batch
    return dict(zip(("input_ids", "attention_mask", "labels"), batch(prompts, responses, sep, pad)))


def token_pairs(tokenizer, rows: list[dict], max_prompt: int, max_response: int) -> list[tuple[list[int], list[int]]]:
    """Token ids of the (prompt, response) rows that fit the diffusion model's slots (the same rows it trains on)."""
    ids = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [(p, r) for p, r in zip(ids([r["prompt"] for r in rows]), ids([r["response"] for r in rows]))
            if len(p) <= max_prompt and len(r) <= max_response]


def train_peer(model, pairs, sep: int, pad: int, *, steps: int, batch_size: int, lr: float, warmup: int,
               seconds: float | None = None, eval_every_seconds: float | None = None, evaluate=None, seed: int = 0):
    """Train GPT-2 or BART: AdamW with warm-up and cosine decay over ``steps`` (the diffusion model's schedule),
    clipping at 1. ``sep`` is the free id (GPT-2's separator, BART's EOS); the warm-up is ``peer_warmup``'s.

    Trains ``steps`` steps, or for ``seconds`` of optimisation time if given (the schedule then ends at
    ``steps`` and the learning rate stays at its floor after). ``evaluate(model, minutes)`` is called every
    ``eval_every_seconds`` of optimisation time (evaluation time is not counted). Returns
    (model, steps done, optimisation seconds, evaluations).
    """
    import time

    import torch

    from diffusion_lm.training.train import lr_lambda

    class _Schedule:
        max_steps, warmup_steps, min_lr_ratio = steps, peer_warmup(model, warmup, steps), 0.1

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(_Schedule))
    gen = torch.Generator().manual_seed(seed)
    spent, done, evals, next_eval = 0.0, 0, [], eval_every_seconds
    model.train()
    while (done < steps) if seconds is None else (spent < seconds):
        start = time.perf_counter()
        idx = torch.randint(0, len(pairs), (batch_size,), generator=gen).tolist()
        loss = model(**peer_batch(model, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], sep, pad)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if done < steps:
            sched.step()
        done += 1
        spent += time.perf_counter() - start
        if evaluate is not None and next_eval is not None and spent >= next_eval:
            evals.append({"train_minutes": spent / 60, "step": done, **evaluate(model.eval(), spent / 60)})
            model.train()
            next_eval += eval_every_seconds
    return model.eval(), done, spent, evals


train_gpt2 = train_peer  # the name from before BART; it trains either model


def gpt2_generate(model, tokenizer, prompts: list[str], sep: int, pad: int, max_new: int,
                  batch_size: int = 64) -> list[str]:
    """Greedy decoding with the KV cache, prompts left-padded, until SEP or ``max_new`` tokens."""
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            chunk = tokenizer(prompts[start : start + batch_size], add_special_tokens=False)["input_ids"]
            width = max(map(len, chunk)) + 1
            x = torch.full((len(chunk), width), pad)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, p in enumerate(chunk):
                x[row, width - len(p) - 1 :] = torch.tensor(p + [sep])
                attn[row, width - len(p) - 1 :] = 1
            out = model.generate(input_ids=x, attention_mask=attn, max_new_tokens=max_new + 1, do_sample=False,
                                 eos_token_id=sep, pad_token_id=pad)
            for row in out[:, width:].tolist():
                row = row[: row.index(sep)] if sep in row else row
                outputs.append(tokenizer.decode([t for t in row if t != pad],
                                                clean_up_tokenization_spaces=True).strip())
    return outputs


def bart_generate(model, tokenizer, prompts: list[str], eos: int, pad: int, max_new: int,
                  batch_size: int = 64) -> list[str]:
    """Greedy decoding with the KV cache (``num_beams=1, do_sample=False``), prompts right-padded into the encoder,
    until EOS or ``max_new`` tokens."""
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            chunk = tokenizer(prompts[start : start + batch_size], add_special_tokens=False)["input_ids"]
            x, attn, _ = seq2seq_batch(chunk, [[]] * len(chunk), eos, pad)
            out = model.generate(input_ids=x, attention_mask=attn, max_new_tokens=max_new + 1, num_beams=1,
                                 do_sample=False, eos_token_id=eos, pad_token_id=pad, decoder_start_token_id=eos)
            for row in out[:, 1:].tolist():
                row = row[: row.index(eos)] if eos in row else row
                outputs.append(tokenizer.decode([t for t in row if t != pad],
                                                clean_up_tokenization_spaces=True).strip())
    return outputs


def peer_generate(model, tokenizer, prompts: list[str], sep: int, pad: int, max_new: int,
                  batch_size: int = 64) -> list[str]:
    """Greedy decoding with the KV cache for GPT-2 (``gpt2_generate``) or BART (``bart_generate``)."""
    fn = bart_generate if model.config.is_encoder_decoder else gpt2_generate
    return fn(model, tokenizer, prompts, sep, pad, max_new, batch_size)
