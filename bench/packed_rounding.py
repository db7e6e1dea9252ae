"""The rollout's packed rounding against the full (B, N, V) path, alternating in one process on a saved model.

    python bench/packed_rounding.py --model runs/demo/model [--task bible] [--repeats 5]

With a length held (L2), ``Rollout`` rounds and interpolates only the slots before each response's length; the full
path rounds every slot and holds the rest one-hot at pad (the same texts: tests/test_exact_speedups.py). Each call
(the model's default, and one step with one candidate) at batch 64 and 1, best of ``--repeats`` per path; the
texts of the two paths are compared too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tasks import task_files, test_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--task", default="bible")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusion_lm import DiffusionLMPipeline
    from diffusion_lm.text.rollout import Rollout

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    paths, _, _ = task_files(args.task, args.model.parent)
    prompts = [r["prompt"] for r in test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length,
                                               cfg.max_response_length, 64)]
    packed_init = Rollout.__init__

    def full_init(self, *a, **k):
        packed_init(self, *a, **k)
        self.written = None  # every slot rounded, the length held one-hot at pad

    print("| call | batch | packed s | full s | speed-up | same texts |\n|---|---|---|---|---|---|")
    for name, call in (("the default call", {}), ("1 step, 1 candidate", {"num_steps": 1, "length_candidates": 1})):
        for batch in (64, 1):
            chunk = (prompts * (batch // len(prompts) + 1))[:batch]
            best, texts = {"packed": float("inf"), "full": float("inf")}, {}
            for _ in range(args.repeats):
                for path, init in (("packed", packed_init), ("full", full_init)):
                    Rollout.__init__ = init
                    start = time.perf_counter()
                    texts[path] = pipe(chunk, batch_size=batch, seed=0, **call)
                    best[path] = min(best[path], time.perf_counter() - start)
            Rollout.__init__ = packed_init
            print(f"| {name} | {batch} | {best['packed']:.4f} | {best['full']:.4f} | "
                  f"{best['full'] / best['packed']:.2f}x | {texts['packed'] == texts['full']} |", flush=True)


if __name__ == "__main__":
    main()
