"""The README demo: King James -> World English Bible verse modernisation on a CPU.

    python -m training.demo [--config configs/demo.yaml] [--section.key value ...]
    python -m training.demo --config configs/demo_quick.yaml --test-size 100     # a first look in a few minutes

Builds the verse pairs if missing (python -m training.build_data bible), trains the demo config,
then generates for held-out test verses and prints BLEU and chrF next to the copy-the-input baseline,
with a few prompt -> generated -> reference rows. Results go to ``<output_dir>/demo_results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from diffusion_lm.common.atomic import write_json_atomic

from .build_data import ensure
from .config import ConfigError, load_config
from .evaluation import text_metrics
from .train import train


def test_pairs(path: Path, tokenizer, max_prompt: int, max_response: int, limit: int) -> list[dict]:
    """The first ``limit`` test verses that fit the model's slots."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if (len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]) <= max_prompt
                    and len(tokenizer(row["response"], add_special_tokens=False)["input_ids"]) <= max_response):
                rows.append(row)
            if len(rows) == limit:
                break
    return rows


def _logged_training(metrics: Path) -> tuple[dict, float]:
    """The last logged training loss and step, and the training minutes of a finished run (nan where not logged)."""
    last, minutes = {}, float("nan")
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if "loss" in row:
                last["loss"] = row["loss"]
            if "step" in row:
                last["step"] = row["step"]
            minutes = row.get("train_minutes", minutes)
    return last, minutes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--num-steps", type=int, default=None,
                        help="sampler steps (default: the saved generation config's)")
    parser.add_argument("--method", default=None, help="sampler (default: the saved generation config's)")
    parser.add_argument("--model", type=Path, default=None,
                        help="score this already-trained model "
                             "(e.g. bench/text_vs_ar.py's runs/bench_bible/ours/model) "
                             "instead of training one")
    args, overrides = parser.parse_known_args(argv)
    paths = ensure("bible")
    try:
        config = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    if args.model is None:
        start = time.time()
        trained = train(config)
        minutes = (time.time() - start) / 60
        out = Path(config.output_dir)
        pipe = DiffusionLMPipeline.from_pretrained(out / "model")
    else:
        out = args.model.parent
        pipe = DiffusionLMPipeline.from_pretrained(args.model)
        trained, minutes = _logged_training(out / "metrics.jsonl")
    cfg = pipe.model.config
    rows = test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
    start = time.time()
    print(f"generating for {len(prompts)} held-out verses ...", flush=True)
    generated = pipe(prompts, num_steps=args.num_steps, method=args.method, batch_size=50, progress=True)
    gen = pipe.generation_config.updated(num_steps=args.num_steps, method=args.method)
    sampler = f"{gen.method}{f' eta={gen.eta:g}' if gen.method == 'ddim' else ''}, {gen.num_steps} steps"
    seconds = time.time() - start
    model, copy = text_metrics(generated, refs), text_metrics(prompts, refs)
    result = {"train_minutes": round(minutes, 1), "train_steps": trained.get("step", config.optim.max_steps),
              "test_verses": len(rows),
              "sampler": sampler, "generation_config": gen.to_dict(), "generate_seconds": round(seconds, 1),
              "bleu": round(model["bleu"], 2), "chrf": round(model["chrf"], 2),
              "copy_bleu": round(copy["bleu"], 2), "copy_chrf": round(copy["chrf"], 2),
              "final_train_loss": trained.get("loss")}
    print(f"\nKJV -> WEB, {len(rows)} held-out verses ({sampler}; trained {result['train_steps']} steps, "
          f"{minutes:.1f} min):")
    print(f"  model BLEU {model['bleu']:.1f}  chrF {model['chrf']:.1f}")
    print(f"  copy-the-input baseline BLEU {copy['bleu']:.1f}  chrF {copy['chrf']:.1f}\n")
    for row, gen in list(zip(rows, generated))[: args.rows]:
        print(f"[{row.get('ref', '')}]\n  KJV:       {row['prompt']}\n  generated: {gen}\n"
              f"  WEB:       {row['response']}\n")
    write_json_atomic(out / "demo_results.json", {**result, "examples": [
        {"prompt": r["prompt"], "generated": g, "reference": r["response"]}
        for r, g in list(zip(rows, generated))[: args.rows]]})
    print(f"model: {out / 'model'}  curves: {out / 'curves.png'}  results: {out / 'demo_results.json'}")
    print(next_steps(out / "model"))
    return 0


def next_steps(model: Path) -> str:
    """What to run next with the model the demo saved."""
    return "\n".join([
        "",
        "Next:",
        f'  python -m inference.generate --model {model} --prompt "Jesus wept."   # generate from it',
        f"  python -m inference.app --model {model}   # watch a response form (pip install -e '.[app]')",
        f"  python -m training.demo --output_dir {model.parent} --optim.max_steps 1500 "
        "--checkpoint.resume_from_checkpoint latest   # train it longer",
        f"  python -m training.distill --teacher {model} --data data/generated/bible/train.jsonl "
        f"--out {model.parent / 'fast'}   # one step, one length candidate: ~10x faster (make demo-fast)",
        "  python -m training.train --config configs/demo.yaml --data.train_files '[your.jsonl]'   # your own data",
    ])


if __name__ == "__main__":
    sys.exit(main())
