"""Generation throughput at equal output length: our diffusion LM at several step counts vs GPT-2.

Both models are built from the same config (tiny, demo or the sort benchmark's sizes) with a random
table and random weights (speed does not depend on the weights), GPT-2 sized to our parameter count
(`bench/ar_baseline.py`). Ours fills all ``max_response_length`` slots in ``steps`` model evaluations
(``dpm_solver++``); GPT-2 decodes greedily with its KV cache exactly ``max_response_length`` tokens
(``min_new_tokens = max_new_tokens``), so both produce the same number of tokens. Prompts are
``max_prompt_length`` tokens. One process, one thread, the two models alternating; best of repeats.

    python bench/generation_throughput.py [--configs sort demo] [--steps 1 5 10 20] [--batches 1 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ar_baseline import gpt2_like  # noqa: E402

SORT = dict(embedding_dim=16, hidden_size=64, num_layers=4, num_heads=4, mlp_ratio=2.0, max_prompt_length=16,
            max_response_length=16, self_conditioning=True, vocab=64)


def build(config_name: str):
    """Our model (random table over a word-level vocabulary) and a GPT-2 of the same size."""
    from diffusion_lm import DiffusionLMConfig, build_model, train_tokenizer
    from training.config import load_config

    if config_name == "sort":
        settings = dict(SORT)
        vocab = settings.pop("vocab")
        cfg = DiffusionLMConfig(**settings)
    else:
        cfg = load_config(ROOT / "configs" / f"{config_name}.yaml", ["--data.train_files", "[x]"]).model_config()
        vocab = 4000
    tok = train_tokenizer([" ".join(f"w{i}" for i in range(vocab))] * 2, kind="wordlevel", vocab_size=vocab + 10)
    model, tok = build_model(cfg, tok)
    model.eval()
    ar = gpt2_like(model.config, len(tok) + 1, sum(p.numel() for p in model.parameters())).eval()
    return model, ar


def best_time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["sort", "demo"])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusion_lm.generation import generate_ids

    print("| config | batch | model | output tokens/s | ratio to GPT-2 |")
    print("|---|---|---|---|---|")
    for name in args.configs:
        model, ar = build(name)
        m = model.config
        n_out = m.max_response_length
        for batch in args.batches:
            gen = torch.Generator().manual_seed(0)
            prompt = torch.randint(2, m.vocab_size, (batch, m.max_prompt_length), generator=gen)
            mask = torch.ones_like(prompt, dtype=torch.bool)
            ar_ids = torch.randint(2, m.vocab_size, (batch, m.max_prompt_length), generator=gen)
            ar_seconds = best_time(lambda: ar.generate(input_ids=ar_ids, attention_mask=torch.ones_like(ar_ids), do_sample=False,
                                                       max_new_tokens=n_out, min_new_tokens=n_out, pad_token_id=0), args.repeats)
            ar_rate = batch * n_out / ar_seconds
            print(f"| {name} | {batch} | GPT-2 greedy, KV cache | {ar_rate:.0f} | 1.00 |", flush=True)
            for steps in args.steps:
                seconds = best_time(lambda: generate_ids(model, prompt, mask, num_steps=steps, method="dpm_solver++",
                                                         generator=torch.Generator().manual_seed(0)), args.repeats)
                rate = batch * n_out / seconds
                print(f"| {name} | {batch} | ours, dpm_solver++ {steps} steps | {rate:.0f} | {rate / ar_rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
