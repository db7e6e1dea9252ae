"""Quality against speed of generation settings on one trained model, in one run: what a default should be.

    python bench/settings_sweep.py --model runs/demo/model --task bible --test-size 300 \
        --set '{}' '{"num_steps": 4}' '{"length_candidates": 1}' '{"num_steps": 2, "length_candidates": 1}'

For each setting (a JSON object of GenerationConfig overrides; '{}' is the model's saved default): BLEU, chrF, exact
match and the error rates on the first ``--test-size`` test pairs that fit (seed 0), network evaluations per
response, and samples per second through ``pipe(prompts)`` at batch 64 and batch 1 (one thread, best of repeats).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tasks import TASKS, task_files, test_pairs


def evaluations(settings, model) -> int:
    """Denoiser evaluations per response: steps (x2 for guidance) per length candidate, the length score's two, and
    the refinement rounds'."""
    s = settings
    per_rollout = s.num_steps * (2 if s.guidance_scale != 1.0 else 1)
    k = s.length_candidates if model.length_predictor is not None else 1
    score = 2 if k > 1 else 0
    return k * (per_rollout + score) + s.refine_iterations * s.refine_steps


def seconds_per_batch(pipe, prompts: list[str], batch: int, repeats: int, call: dict) -> float:
    chunk = (prompts * (batch // len(prompts) + 1))[:batch]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        pipe(chunk, batch_size=batch, **call)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--task", choices=TASKS, default="bible")
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--set", nargs="+", default=["{}"], help="GenerationConfig overrides as JSON objects")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusion_lm import DiffusionLMPipeline
    from diffusion_lm.training.evaluation import text_metrics

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    paths, _, _ = task_files(args.task, args.model.parent)
    rows = test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
    results = []
    for text in args.set:
        call = json.loads(text)
        texts = pipe(prompts, batch_size=64, seed=0, **call)
        row = {"settings": call, "evaluations": evaluations(pipe.generation_config.updated(**call), pipe.model),
               **{k: round(v, 2) for k, v in text_metrics(texts, refs).items()}}
        for batch in (64, 1):
            row[f"samples_per_s_batch{batch}"] = round(batch / seconds_per_batch(pipe, prompts, batch, args.repeats,
                                                                                 call), 2)
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": str(args.model), "task": args.task, "pairs": len(rows),
                                        "results": results}, indent=1))


if __name__ == "__main__":
    main()
