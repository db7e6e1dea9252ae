"""Likelihood on held-out KJV -> WEB pairs: our bound (N1) against a same-size GPT-2's exact NLL, nats per token.

Ours: ``model.nll`` (upper bound on -log p(response | prompt), Monte Carlo error reported). GPT-2: trained
here on the same pairs and tokenizer for the same optimisation time as ours took (its metrics.jsonl), then
-log p of ``response SEP`` given ``prompt SEP`` by teacher forcing. Both divided by the response's tokens + 1
(the end token; ours counts the pad slots' prediction into that end).

    python bench/text_nll.py --model runs/bench_bible/ours/model --out runs/nll_bible
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ar_baseline import ar_batch, gpt2_like, token_pairs, train_gpt2
from tasks import task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]



def gpt2_nats(model, pairs, sep: int, pad: int, batch_size: int = 64) -> tuple[float, int]:
    """Total -log p of the response tokens and the end token, and their count."""
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            ids, mask, labels = ar_batch([p for p, _ in chunk], [r for _, r in chunk], sep, pad)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            target = labels[:, 1:]
            keep = target != -100
            nll = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")
            total, count = total + float(nll), count + int(keep.sum())
    return total, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "nll_bible")
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--samples", type=int, default=64, help="Monte Carlo samples of the diffusion integral")
    parser.add_argument("--gpt2-minutes", type=float, default=None, help="default: ours' logged training minutes")
    parser.add_argument("--gpt2-steps", type=int, default=None,
                        help="train GPT-2 exactly this many steps instead (e.g. the count it reached at equal time "
                             "on an idle machine: a busy machine gives it fewer)")
    parser.add_argument("--reuse-ours", action="store_true", help="take our bound from an earlier OUT/results.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm.common.atomic import write_json_atomic
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    paths, _, _ = task_files("bible", args.out)
    rows = test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, args.test_size)
    earlier = args.out / "results.json"
    if args.reuse_ours and earlier.exists():
        ours = json.loads(earlier.read_text())["ours"]
    else:
        prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
        bound = pipe.score(prompts, responses, num_samples=args.samples, batch_size=50)  # 50-verse batches
        ours = {"nats_per_token": bound.nats_per_token,
                "stderr_per_token": float(bound.stderr.pow(2).sum().sqrt() / bound.tokens.sum()),
                "prior": float(bound.prior.sum() / bound.tokens.sum()),
                "diffusion": float(bound.diffusion.sum() / bound.tokens.sum()),
                "reconstruction": float(bound.reconstruction.sum() / bound.tokens.sum())}
    print("ours (bound)", ours, flush=True)

    logged = [json.loads(line) for line in open(args.model.parent / "metrics.jsonl")]
    ours_steps = max(r["step"] for r in logged)  # GPT-2's schedule ends there, as in bench/text_vs_ar.py
    minutes = args.gpt2_minutes or [r["train_minutes"] for r in logged if "train_minutes" in r][-1]
    train_rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")]
    pairs = token_pairs(pipe.tokenizer, train_rows, cfg.max_prompt_length, cfg.max_response_length)
    torch.manual_seed(0)
    gpt2 = gpt2_like(cfg, len(pipe.tokenizer) + 1, sum(p.numel() for p in pipe.model.parameters()))
    sep = len(pipe.tokenizer)
    gpt2, steps, seconds, _ = train_gpt2(gpt2, pairs, sep, cfg.pad_token_id, steps=args.gpt2_steps or ours_steps,
                                        batch_size=64, lr=1e-3, warmup=50,
                                        seconds=None if args.gpt2_steps else 60 * minutes, seed=0)
    held = token_pairs(pipe.tokenizer, rows, cfg.max_prompt_length, cfg.max_response_length)
    total, count = gpt2_nats(gpt2, held, sep, cfg.pad_token_id)
    result = {"verses": len(rows), "ours": ours, "gpt2": {"nats_per_token": total / count, "train_steps": steps,
              "train_seconds": seconds}, "ours_train_minutes": minutes}
    print("GPT-2 (exact)", result["gpt2"], flush=True)
    write_json_atomic(args.out / "results.json", result)


if __name__ == "__main__":
    main()
