"""One option against the package defaults, as a user meets it: train the task's config with overrides through
``training.train``, then score the model's default call (its saved generation settings) at several step counts.

    python bench/option_scores.py --task g2p --out runs/opt/g2p_a1 --set model.position_noise_skew=1
    python bench/option_scores.py --task inflect --out runs/opt/inflect_lx --set objective.lambda_x0=0.25
    python bench/option_scores.py --task g2p --out runs/opt/g2p_a1 --model runs/opt/g2p_a1/run/model \
        --steps 1 4 --gen length_candidates=1           # score a trained model with other settings

Writes ``<out>/scores.json``: the optimisation seconds, and per step count the task's headline metric (exact
match, or BLEU for KJV -> WEB), its error rate, chrF and the seconds the call took on ``--test-size`` test pairs
(the first that fit), seed 0, batch 250. Run it with ``OMP_NUM_THREADS=1`` (training takes its threads from it),
two at a time on two cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tasks import TASKS, command_line_overrides, metrics, task_files, test_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4, 10])
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--model", type=Path, default=None, help="score this trained model instead of training")
    parser.add_argument("--gen", nargs="*", default=[], help="generation settings for the calls, key=json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm import DiffusionLMPipeline
    from diffusion_lm.training.config import load_config
    from diffusion_lm.training.evaluation import text_metrics
    from diffusion_lm.training.train import train

    paths, config_path, extra = task_files(args.task, args.out)
    scores: dict = {"task": args.task, "set": args.set, "gen": args.gen}
    model = args.model
    if model is None:
        overrides = extra + ["--output_dir", str(args.out / "run"), "--data.train_files", f"[{paths['train']}]",
                             "--data.validation_files", f"[{paths['validation']}]", "--eval.generate", "0",
                             "--trackers", "[]"] + command_line_overrides(args.set)
        scores["train_seconds"] = train(load_config(config_path, overrides))["train_seconds"]
        model = args.out / "run" / "model"
    pipe = DiffusionLMPipeline.from_pretrained(str(model))
    m = pipe.model.config
    rows = test_pairs(paths["test"], pipe.tokenizer, m.max_prompt_length, m.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
    headline, error = metrics(args.task)
    settings = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.gen)}
    for steps in args.steps:
        start = time.perf_counter()
        hyps = pipe(prompts, num_steps=steps, batch_size=250, seed=0, **settings)
        got = text_metrics(hyps, refs)
        scores[f"steps{steps}"] = {headline: round(got[headline], 2), error: round(got[error], 2),
                                   "chrf": round(got["chrf"], 2), "seconds": round(time.perf_counter() - start, 1)}
        print(args.out, steps, scores[f"steps{steps}"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.json").write_text(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
