"""What a denoiser shape costs: parameters, a training step and a default call, for variants of a task's model.

Every variant is the task's config with ``--set``-style overrides of its ``model:`` section (``A=key=value,...``),
built untrained from the same tokenizer; a training step (the model's own loss, self-conditioning pass included,
backward and AdamW) on the same batches, and the default call (the config's generation settings: 4 steps x 3 length
candidates) on the same prompts, are timed in turns in one process, one thread, so the ratios against the first
variant hold while the machine's speed drifts. Untrained models predict lengths at random, so the call times are
for the lengths they pick; the same for every variant up to that.

    python bench/model_cost.py --task g2p --variants per_block_4= \
        "shared_7=time_modulation=shared,num_layers=7,length_layers=1"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tasks import TASKS, task_files, test_pairs


def _parse(item: str) -> tuple[str, dict]:
    name, _, body = item.partition("=")
    settings = {}
    for pair in filter(None, body.split(",")):
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    return name, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--variants", nargs="+", required=True, help="name=key=value,key=value (the first: baseline)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per variant and round")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm import DiffusionLMConfig, build_model, train_tokenizer
    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.text.generation_config import GenerationConfig
    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.config import load_config

    paths, config_path, _ = task_files(args.task, Path("runs/model_cost"))
    config = load_config(config_path)
    texts = [json.loads(line) for line in open(paths["train"], encoding="utf-8")][:20_000]
    spec = config.tokenizer.train
    tok = train_tokenizer([t for r in texts for t in (r["prompt"], r["response"])], spec.kind, spec.vocab_size,
                          spec.lowercase)
    base = dict(config.model)
    rows = test_pairs(paths["train"], tok, base["max_prompt_length"], base["max_response_length"], 20_000)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps):
        idx = torch.randint(0, len(rows), (config.optim.batch_size,), generator=gen).tolist()
        batches.append(idx)
    variants = {}
    for item in args.variants:
        name, settings = _parse(item)
        model, tokenizer = build_model(DiffusionLMConfig(**{**base, **settings}), tok, seed=0)
        cfg = model.config
        data = [encode_pairs(tokenizer, [rows[i]["prompt"] for i in idx], [rows[i]["response"] for i in idx],
                             cfg.max_prompt_length, cfg.max_response_length) for idx in batches]
        pipe = DiffusionLMPipeline(model.eval(), tokenizer, GenerationConfig(**config.generation))
        variants[name] = dict(model=model, data=data, pipe=pipe, train=[], call=[],
                              params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    test = test_pairs(paths["test"], tok, base["max_prompt_length"], base["max_response_length"], args.prompts)
    prompts = [r["prompt"] for r in test]
    for _ in range(args.rounds):
        for v in variants.values():
            model, opt = v["model"], torch.optim.AdamW(v["model"].parameters(), lr=1e-4)
            model.train()
            start = time.perf_counter()
            for batch in v["data"]:
                loss = model(batch.prompt_ids, batch.prompt_mask, batch.response_ids).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            v["train"].append((time.perf_counter() - start) / len(v["data"]))
            model.eval()
            torch.manual_seed(0)
            start = time.perf_counter()
            v["pipe"](prompts)
            v["call"].append(time.perf_counter() - start)
    first = next(iter(variants.values()))
    print(f"| variant | trainable params | s / training step | x | s / default call ({len(prompts)} prompts) | x |")
    print("|---|---|---|---|---|---|")
    for name, v in variants.items():
        train_s, call_s = min(v["train"]), min(v["call"])
        print(f"| {name} | {v['params'] / 1e6:.2f}M | {train_s:.3f} | {train_s / min(first['train']):.2f} | "
              f"{call_s:.2f} | {call_s / min(first['call']):.2f} |")


if __name__ == "__main__":
    main()
