"""Ablations of the text model's options: train one variant of a task's config, then measure it.

For each run: the training time, token accuracy of one x0 prediction against t and log-SNR given the
true noised response (``diffusion_lm.diagnostics``), and BLEU / chrF / exact match of unclamped
rollouts at 1, 10, 20 (and 200) steps of ``ddim`` (eta 0 and 1) and ``dpm_solver++`` on held-out pairs.

    python bench/ablation.py --task bible --variant interpolated --out runs/ablation
    python bench/ablation.py --task g2p --variant base --set model.time_warping=true --name warp
    python bench/ablation.py --report runs/ablation          # the table of every run under a folder

Each run writes ``<out>/<task>/<name>/results.json`` (and the model under ``run/model``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tasks import TASKS, task_files, test_pairs  # noqa: E402

# Each variant: overrides of the task's config, as --section.key value pairs.
VARIANTS: dict[str, dict[str, str]] = {
    "base": {},
    "interpolated": {"model.x0_parameterization": "interpolated"},
    "warp": {"model.time_warping": "true"},
    "interpolated_warp": {"model.x0_parameterization": "interpolated", "model.time_warping": "true"},
}
# (method, eta, steps, pad_boundary)
SETTINGS = [("ddim", 0.0, 1, False), ("ddim", 0.0, 10, False), ("ddim", 0.0, 20, False), ("ddim", 1.0, 10, False),
            ("ddim", 1.0, 20, False), ("dpm_solver++", 0.0, 10, False), ("dpm_solver++", 0.0, 20, False),
            ("ddim", 0.0, 10, True), ("ddim", 1.0, 20, True), ("ddim", 0.0, 200, False)]
DIAG_TIMES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0]


def run(task: str, name: str, overrides: dict[str, str], out: Path, test_size: int, settings, steps: int | None,
        eval_only: bool = False, temperature: float | None = None) -> dict:
    from accelerate.state import AcceleratorState

    from diffusion_lm.data import encode_pairs
    from diffusion_lm.diagnostics import token_accuracy_by_time
    from diffusion_lm.pipeline import DiffusionLMPipeline
    from training.config import load_config
    from training.evaluation import text_metrics
    from training.train import train

    folder = out / task / name
    paths, config_path, task_overrides = task_files(task, out / task)
    args = list(task_overrides) + ["--output_dir", str(folder / "run"), "--data.train_files", f"[{paths['train']}]",
                                   "--data.validation_files", f"[{paths['validation']}]", "--trackers", "[]",
                                   "--eval.generate", "0"]
    if steps:
        args += ["--optim.max_steps", str(steps)]
    for key, value in overrides.items():
        args += [f"--{key}", value]
    config = load_config(config_path, args)
    if eval_only:
        result = json.loads((folder / "results.json").read_text())
    else:
        start = time.time()
        trained = train(config)
        AcceleratorState._reset_state(reset_partial_state=True)
        result = {"task": task, "name": name, "overrides": overrides, "train_seconds": trained["train_seconds"],
                  "wall_seconds": round(time.time() - start, 1), "max_steps": config.optim.max_steps,
                  "val_loss": trained.get("val_loss")}

    pipe = DiffusionLMPipeline.from_pretrained(folder / "run" / "model")
    cfg = pipe.model.config
    rows = test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, test_size)
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
    result["copy"] = text_metrics(prompts, refs)
    batch = encode_pairs(pipe.tokenizer, prompts, refs, cfg.max_prompt_length, cfg.max_response_length)
    result["accuracy_by_time"] = [vars(a) for a in token_accuracy_by_time(pipe.model, batch.prompt_ids, batch.prompt_mask,
                                                                          batch.response_ids, DIAG_TIMES)]
    result["generation"] = []
    for method, eta, n, pad in settings:
        t0 = time.time()
        texts = pipe(prompts, num_steps=n, method=method, eta=eta, clamp=False, pad_boundary=pad, batch_size=100, seed=0,
                     temperature=temperature)
        row = {"method": method, "eta": eta, "steps": n, "pad_boundary": pad, "temperature": temperature, **text_metrics(texts, refs),
               "seconds": round(time.time() - t0, 1), "examples": texts[:3]}
        result["generation"].append(row)
        print(name, method, eta, n, pad, {k: round(v, 2) for k, v in row.items() if k in ("bleu", "chrf", "exact_match")}, flush=True)
    result["references"] = refs[:3]
    tmp = folder / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(folder / "results.json")
    return result


def report(folder: Path) -> str:
    """A markdown table of every results.json under ``folder``."""
    lines = []
    for task in TASKS:
        results = [json.loads(p.read_text()) for p in sorted((folder / task).glob("*/results.json"))]
        if not results:
            continue
        head = [f"{m}{' eta=' + format(e, 'g') if m == 'ddim' else ''} {n}{' L' if p else ''}" for m, e, n, p in SETTINGS]
        metric = "exact_match" if task != "bible" else "bleu"
        lines += [f"### {task} ({metric}; training minutes in brackets; L = pad boundary)", "",
                  "| variant | " + " | ".join(head) + " | acc t=0.9 / 1.0 |", "|---|" + "---|" * (len(head) + 1)]
        for r in results:
            cells = []
            for m, e, n, p in SETTINGS:
                g = next((g for g in r["generation"]
                          if (g["method"], g["eta"], g["steps"], g.get("pad_boundary", False)) == (m, e, n, p)), None)
                cells.append(f"{g[metric]:.1f}" if g else "-")
            acc = {a["t"]: a["content_accuracy"] for a in r["accuracy_by_time"]}
            lines.append(f"| {r['name']} ({r['train_seconds'] / 60:.1f}) | " + " | ".join(cells)
                         + f" | {100 * acc.get(0.9, float('nan')):.0f} / {100 * acc.get(1.0, float('nan')):.0f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="bible")
    parser.add_argument("--variant", default="base", choices=sorted(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides key=value (model.time_warping=true)")
    parser.add_argument("--name", default=None, help="run name (default: the variant)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablation")
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the task config's)")
    parser.add_argument("--quick", action="store_true", help="skip the 200-step rollout")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-only", action="store_true", help="re-measure a trained run with the current settings")
    parser.add_argument("--temperature", type=float, default=None, help="generation temperature (default: the model's)")
    parser.add_argument("--report", type=Path, default=None, help="print the table of the runs under this folder")
    args = parser.parse_args()
    if args.report:
        print(report(args.report))
        return
    torch.set_num_threads(args.threads)
    overrides = dict(VARIANTS[args.variant])
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = value
    settings = [s for s in SETTINGS if not (args.quick and s[2] > 20)]
    run(args.task, args.name or args.variant, overrides, args.out, args.test_size, settings, args.steps, args.eval_only, args.temperature)


if __name__ == "__main__":
    main()
