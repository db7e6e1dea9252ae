"""Infilling on KJV -> WEB: given the first and last words of the WEB verse, fill the middle.

For the first ``--test-size`` test verses that fit the model, the template is
``<first word> [FILL:k] <last word>`` with k the number of tokens between them in the reference; ours
fills it with the model's generation settings. Reported next to free generation (no template) on the
same prompts and seed: BLEU / chrF of the whole response, and of the middle alone (the template's
words removed from both sides).

    python bench/infill.py --model runs/bench_bible/ours/model --out runs/infill_bible
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tasks import task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]



def templates_for(tokenizer, responses: list[str], max_response: int) -> tuple[list[str], list[tuple[str, str]]]:
    """``first [FILL:k] last`` per reference (k: the reference's tokens between its first and last word)."""
    templates, ends = [], []
    for text in responses:
        words = text.split()
        first, last = words[0], words[-1]
        n_all = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        n_ends = (len(tokenizer(first, add_special_tokens=False)["input_ids"])
                  + len(tokenizer(last, add_special_tokens=False)["input_ids"]))
        k = max(1, min(n_all - n_ends, max_response - n_ends))
        templates.append(f"{first} [FILL:{k}] {last}")
        ends.append((first, last))
    return templates, ends


def middle(text: str, first: str, last: str) -> str:
    """``text`` without the given first and last words (where it has them)."""
    words = text.split()
    if words and words[0] == first:
        words = words[1:]
    if words and words[-1] == last:
        words = words[:-1]
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "infill_bible")
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.evaluation import text_metrics

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    paths, _, _ = task_files("bible", args.out)
    rows = [r for r in test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length,
                                  args.test_size)
            if len(r["response"].split()) >= 3]
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
    templates, ends = templates_for(pipe.tokenizer, refs, cfg.max_response_length)
    free = pipe(prompts, batch_size=100, seed=0)
    filled = pipe(prompts, batch_size=100, seed=0, response_template=templates)
    ref_mid = [middle(r, *e) for r, e in zip(refs, ends)]
    result = {
        "model": str(args.model), "verses": len(rows), "generation_config": pipe.generation_config.to_dict(),
        "free": text_metrics(free, refs), "infilled": text_metrics(filled, refs),
        "free_middle": text_metrics([middle(t, *e) for t, e in zip(free, ends)], ref_mid),
        "infilled_middle": text_metrics([middle(t, *e) for t, e in zip(filled, ends)], ref_mid),
        "examples": [{"prompt": p, "template": t, "infilled": f, "free": g, "reference": r}
                     for p, t, f, g, r in list(zip(prompts, templates, filled, free, refs))[:5]],
    }
    from diffusion_lm.common.atomic import write_json_atomic

    write_json_atomic(args.out / "results.json", result)
    for key in ("free", "infilled", "free_middle", "infilled_middle"):
        print(f"{key:16s} BLEU {result[key]['bleu']:.1f}  chrF {result[key]['chrf']:.1f}")
    for ex in result["examples"][:3]:
        print(json.dumps(ex, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
