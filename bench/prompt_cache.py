"""Step time of the text denoiser with the prompt cached (prompt_attention="cached") against the joint pass.

Demo-size models (hidden 192, 4 layers, 64-d table), untrained (time does not depend on the weights). For
a response of N slots and prompts of P = N and P = 4N slots, at batch 1 and 64: the time of one sampler
step (one denoiser call) for the joint model, and for the cached model with its prompt encoded once
(reported separately, as a per-generation cost). All timings in one process, best of repeats.

    python bench/prompt_cache.py [--n 48 --threads 1]
"""

from __future__ import annotations

import argparse
import json

import torch

from generation_throughput import best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusion_lm import DiffusionLMConfig, DiffusionLMModel

    rows = []
    n = args.n
    for p in (n, 4 * n):
        for mode in ("joint", "cached"):
            cfg = DiffusionLMConfig(vocab_size=4000, embedding_dim=64, hidden_size=192, num_layers=4, num_heads=6,
                                    mlp_ratio=2.0, max_prompt_length=p, max_response_length=n, self_conditioning=True,
                                    prompt_attention=mode)
            model = DiffusionLMModel(cfg, torch.randn(4000, 64)).eval()
            for batch in (1, 64):
                ids = torch.randint(4, 4000, (batch, p))
                mask = torch.ones(batch, p, dtype=torch.bool)
                z, t = torch.randn(batch, n, 64), torch.full((batch,), 0.5)
                with torch.no_grad():
                    cache = model.encode_prompt(ids, mask)
                    step = best_time(lambda: model.predict(ids, mask, z, t, z, prompt_cache=cache), 5)
                    encode = best_time(lambda: model.encode_prompt(ids, mask), 5) if cache is not None else 0.0
                rows.append({"P": p, "N": n, "mode": mode, "batch": batch, "step_ms": round(1000 * step, 2),
                             "prompt_encode_ms": round(1000 * encode, 2)})
                print(rows[-1], flush=True)
    step = {(r["P"], r["mode"], r["batch"]): r["step_ms"] for r in rows}
    for batch in (1, 64):
        for mode in ("joint", "cached"):
            print(f"batch {batch}, {mode}: step time at P = 4N over P = N: "
                  f"{step[(4 * n, mode, batch)] / step[(n, mode, batch)]:.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
