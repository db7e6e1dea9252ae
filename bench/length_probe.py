"""How well a length classifier can learn a task's lengths on its own: a fresh ``LengthPredictor`` (L2, or with the
fertility term L4) trained alone on a trained model's frozen table, its top-1 / top-3 test accuracy every 500 steps.

    python bench/length_probe.py --model runs/g2p/model --task g2p --fertility false
    python bench/length_probe.py --model runs/g2p/model --task g2p --fertility true --steps 3000

One thread; AdamW at ``--lr`` with 50 warm-up steps and a cosine to 0, batch 64, gradients clipped at 1.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from tasks import test_pairs

ROOT = Path(__file__).resolve().parents[1]


def encoded(pipe, path: Path, limit: int):
    """Prompt ids and mask and response lengths of the first ``limit`` rows of ``path`` that fit the model's slots."""
    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.text.length import response_lengths

    cfg = pipe.model.config
    rows = test_pairs(path, pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, limit)
    batch = encode_pairs(pipe.tokenizer, [r["prompt"] for r in rows], [r["response"] for r in rows],
                         cfg.max_prompt_length, cfg.max_response_length)
    return batch.prompt_ids, batch.prompt_mask.bool(), response_lengths(batch.response_ids, cfg.pad_token_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a trained model: its table and slots")
    parser.add_argument("--task", required=True, help="data/generated/<task>/{train,test}.jsonl")
    parser.add_argument("--fertility", choices=["true", "false"], default="true")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-rows", type=int, default=70000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm.text.length import LengthPredictor
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    data = ROOT / "data" / "generated" / args.task
    train, test = encoded(pipe, data / "train.jsonl", args.train_rows), encoded(pipe, data / "test.jsonl", 10**9)
    torch.manual_seed(0)
    config = pipe.model.config.__class__.from_dict({**pipe.model.config.to_dict(),
                                                    "length_fertility": args.fertility == "true"})
    predictor, embed = LengthPredictor(config), pipe.model.embed
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=args.lr, weight_decay=0.0)
    schedule = lambda s: min(1, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def accuracy(ids, mask, lengths) -> tuple[float, float]:
        predictor.eval()
        logits = torch.cat([predictor(embed(ids[i : i + 500]), mask[i : i + 500]) for i in range(0, len(ids), 500)])
        predictor.train()
        top = logits.topk(3, -1).indices
        return (top[:, 0] == lengths).float().mean().item(), (top == lengths[:, None]).any(-1).float().mean().item()

    for step in range(1, args.steps + 1):
        pick = torch.randint(len(train[0]), (64,), generator=generator)
        with torch.no_grad():
            rows = embed(train[0][pick])
        loss = F.cross_entropy(predictor(rows, train[1][pick]), train[2][pick])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(predictor.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % 500 == 0 or step == args.steps:
            top1, top3 = accuracy(*test)
            print(f"step {step}: loss {loss.item():.3f}, test lengths right {100 * top1:.1f}% "
                  f"(top 3: {100 * top3:.1f}%)", flush=True)


if __name__ == "__main__":
    main()
