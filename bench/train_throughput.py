"""Training throughput and peak memory: our diffusion LM vs an autoregressive GPT-2 of the same size.

For each config (tiny, demo) both models train on the same batches of the same data with the same
tokenizer and AdamW: ours on (prompt, padded response) pairs, GPT-2 (transformers' GPT2LMHeadModel
from a config, width chosen to match our parameter count) on ``prompt [PAD] response`` sequences
with the loss on the response (`bench/ar_baseline.py`). Each measurement runs in its own process, so peak memory
(max RSS on CPU, max allocated on CUDA) is its own; tokens/s counts prompt + response tokens.

    python bench/train_throughput.py [--steps 30] [--configs tiny demo]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from ar_baseline import ar_batch, gpt2_like

ROOT = Path(__file__).resolve().parents[1]



def _setup(config_name: str):
    import torch

    from diffusion_lm import build_model, train_tokenizer
    from diffusion_lm.training.build_data import ensure
    from diffusion_lm.training.config import load_config

    config = load_config(ROOT / "configs" / f"{config_name}.yaml")
    paths = ensure("bible" if "bible" in config.data.train_files[0] else "synthetic")
    rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")][:20_000]
    spec = config.tokenizer.train
    tok = train_tokenizer([t for r in rows for t in (r["prompt"], r["response"])], spec.kind, spec.vocab_size,
                          spec.lowercase)
    model, tok = build_model(config.model_config(), tok)
    m = model.config
    ids = lambda texts: tok(texts, add_special_tokens=False)["input_ids"]
    pairs = [(p, r) for p, r in zip(ids([r["prompt"] for r in rows]), ids([r["response"] for r in rows]))
             if len(p) <= m.max_prompt_length and len(r) <= m.max_response_length]
    torch.manual_seed(0)
    return config, model, tok, pairs


def measure(which: str, config_name: str, steps: int, warmup: int) -> dict:
    """Train ``which`` (ours | gpt2) for warmup + steps batches; tokens/s over the timed steps."""
    import torch

    from diffusion_lm.text.batching import pad_prompts, pad_responses

    config, model, tok, pairs = _setup(config_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m, bs = model.config, config.optim.batch_size
    if which == "gpt2":
        model = gpt2_like(m, len(tok) + 1, sum(p.numel() for p in model.parameters()))
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    tokens, elapsed = 0, 0.0
    for step in range(warmup + steps):
        idx = torch.randint(0, len(pairs), (bs,), generator=gen).tolist()
        batch_p, batch_r = [pairs[i][0] for i in idx], [pairs[i][1] for i in idx]
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        if which == "ours":
            ids, mask = pad_prompts(batch_p, m.pad_token_id)
            loss = model(ids.to(device), mask.to(device),
                         pad_responses(batch_r, m.max_response_length, m.pad_token_id).to(device)).loss
        else:
            ids, attn, labels = ar_batch(batch_p, batch_r, len(tok), m.pad_token_id)
            loss = model(input_ids=ids.to(device), attention_mask=attn.to(device), labels=labels.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            elapsed += time.perf_counter() - start
            tokens += sum(map(len, batch_p)) + sum(map(len, batch_r))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"model": which, "config": config_name,
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "tokens_per_s": round(tokens / elapsed, 1), "peak_memory_MB": round(peak, 1), "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "demo"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.steps, args.warmup)))
        return
    results = []
    for config in args.configs:
        for which in ("ours", "gpt2"):  # each in a fresh process: its own peak memory
            out = subprocess.run([sys.executable, __file__, "--one", which, config, "--steps", str(args.steps),
                                  "--warmup", str(args.warmup)],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| config | model | params (M) | train tokens/s | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {'diffusion-lm' if r['model'] == 'ours' else 'GPT-2 (AR)'} | {r['params_M']} | "
              f"{r['tokens_per_s']} | {r['peak_memory_MB']} |")
    print()
    for config in args.configs:
        ours, ar = (next(r for r in results if r["config"] == config and r["model"] == w) for w in ("ours", "gpt2"))
        print(f"- {config}: diffusion-lm trains at {ours['tokens_per_s'] / ar['tokens_per_s']:.2f}x "
              f"the token throughput of GPT-2, with {ours['peak_memory_MB'] / ar['peak_memory_MB']:.2f}x "
              f"its peak memory ({ours['device']}).")


if __name__ == "__main__":
    main()
