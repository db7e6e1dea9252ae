"""Every core sampler on a trained text model: which ones hold quality on text (no worse than one x0 prediction).

    python bench/text_samplers.py --model runs/demo/model --test-size 100 --out runs/text_samplers.json

Each sampler runs with the model's saved generation settings otherwise, at 10 and 20 steps, on the first
``--test-size`` KJV -> WEB test verses that fit, seed 0; BLEU and chrF against the WEB, next to one x0 prediction.
The samplers a text model's generation config refuses (``REFUSED_FOR_TEXT``) are measured too: that list is what
this script found, and ``euler``, which holds here but fell below one x0 prediction at 10 steps on the smaller verse
model of tests/test_text_steps.py. ``rk45`` (adaptive, minutes per batch) only with ``--rk45``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tasks import task_files, test_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--test-size", type=int, default=100)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--rk45", action="store_true", help="also the adaptive rk45 (slow)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm import DiffusionLMPipeline
    from diffusion_lm.core import METHODS
    from diffusion_lm.text import generation_config
    from diffusion_lm.training.evaluation import text_metrics

    refused = dict(generation_config.REFUSED_FOR_TEXT)
    generation_config.REFUSED_FOR_TEXT.clear()  # measure every sampler, the refused ones included
    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    paths, _, _ = task_files("bible", args.model.parent)
    rows = test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
    results = []

    def score(name: str, steps: int, **call) -> None:
        start = time.perf_counter()
        texts = pipe(prompts, batch_size=50, seed=0, num_steps=steps, **call)
        m = text_metrics(texts, refs)
        results.append({"sampler": name, "steps": steps, "bleu": round(m["bleu"], 2), "chrf": round(m["chrf"], 2),
                        "seconds": round(time.perf_counter() - start, 1), "refused": name in refused,
                        "example": texts[0]})
        print(json.dumps(results[-1]), flush=True)

    score("one x0 prediction", 1)
    for method in METHODS:
        if method == "rk45" and not args.rk45:
            continue
        for steps in args.steps:
            score(method, steps, method=method, eta=pipe.generation_config.eta if method == "ddim" else 0.0)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": str(args.model), "verses": len(rows), "results": results}, indent=1))
    one = results[0]["bleu"]
    print("\n| sampler | " + " | ".join(f"{s} steps" for s in args.steps) + " |")
    print("|---|" + "---|" * len(args.steps))
    print(f"| one x0 prediction | {one:.1f} |")
    for method in dict.fromkeys(r["sampler"] for r in results[1:]):
        cells = [next(f"{r['bleu']:.1f} / {r['chrf']:.1f}" for r in results
                      if (r["sampler"], r["steps"]) == (method, s))
                 for s in args.steps]
        holds = all(r["bleu"] >= one for r in results if r["sampler"] == method)
        print(f"| {method}{'' if holds else ' (below one x0 prediction)'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
