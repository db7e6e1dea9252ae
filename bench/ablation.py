"""Ablations of the text model's options: train one variant of a task's config, then measure it.

For each run: the training time, token accuracy of one x0 prediction against t and log-SNR given the
true noised response (``diffusion_lm.text.diagnostics``), and BLEU / chrF / exact match of unclamped
rollouts at 1, 10, 20 (and 200) steps of ``ddim`` (eta 0 and 1) and ``dpm_solver++`` on held-out pairs.

    python bench/ablation.py --task bible --variant interpolated --out runs/ablation
    python bench/ablation.py --task g2p --variant base --set model.time_warping=true --name warp
    python bench/ablation.py --report runs/ablation          # the table of every run under a folder

Each run writes ``<out>/<task>/<name>/results.json`` (and the model under ``run/model``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tasks import TASKS, task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]


# Each variant: overrides of the task's config (which runs the package defaults), one option flipped. The variants
# of removed options (direct x0, self-conditioning sources, rollout training, aligned positions) are recorded in
# docs/benchmarks.md, 'Options removed'.
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "no_warp": {"model.time_warping": "false"},
    "no_self_cond": {"model.self_conditioning": "false"},
    "noise_scale_x2": {"model.schedule": "{type: vp, profile: sqrt, s: 1.0e-4, log_snr_shift: -1.3862943611198906}"},
    "cosine_schedule": {"model.schedule": "{type: vp, profile: cosine, s: 0.008}"},
    "min_noise": {"objective.t_eps": "0.2"},
    "prompt_cached": {"model.prompt_attention": "cached"},
    "length_prediction": {"model.length_prediction": "true"},
    "length_relative": {"model.length_relative": "true"},
}
# Generation settings measured on every run: (name, overrides of the saved generation config).
SETTINGS = [("1 step", {"num_steps": 1}), ("ddim eta=1, 10", {"num_steps": 10}), ("ddim eta=1, 20", {"num_steps": 20}),
            ("ddim eta=0, 10", {"num_steps": 10, "eta": 0.0}), ("ddim eta=0, 20", {"num_steps": 20, "eta": 0.0}),
            ("dpm_solver++, 10", {"num_steps": 10, "method": "dpm_solver++"}),
            ("dpm_solver++, 20", {"num_steps": 20, "method": "dpm_solver++"}), ("ddim eta=1, 200", {"num_steps": 200})]
# Generation options measured on the "defaults" run only (no retraining): (name, overrides).
INFERENCE_VARIANTS = [("offset 0 (plain sampler)", {"log_snr_offset": 0.0}), ("offset 2", {"log_snr_offset": 2.0}),
                      ("offset 6", {"log_snr_offset": 6.0}), ("temperature 0.3", {"temperature": 0.3}),
                      ("adjacent repeats blocked", {"block_adjacent_repeats": True}), ("clamped", {"clamp": True}),
                      ("log-SNR grid", {"grid": "logsnr"}), ("time grid", {"grid": "time"}),
                      ("3 length candidates", {"length_candidates": 3}),
                      ("5 length candidates", {"length_candidates": 5})]
DIAG_TIMES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0]


def run(task: str, name: str, overrides: dict[str, str], out: Path, test_size: int, settings, steps: int | None,
        eval_only: bool = False) -> dict:
    from accelerate.state import AcceleratorState

    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.text.diagnostics import token_accuracy_by_time
    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.config import load_config
    from diffusion_lm.training.evaluation import text_metrics
    from diffusion_lm.training.train import train

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
    if eval_only and (folder / "results.json").exists():
        result = json.loads((folder / "results.json").read_text())
    elif eval_only:  # a run whose measurement was cut short: what training logged
        last = [r for r in map(json.loads, open(folder / "run" / "metrics.jsonl")) if "train_minutes" in r][-1]
        result = {"task": task, "name": name, "overrides": overrides, "train_seconds": 60 * last["train_minutes"],
                  "max_steps": last["step"], "val_loss": last.get("val_loss")}
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
    result["accuracy_by_time"] = [vars(a) for a in token_accuracy_by_time(pipe.model, batch.prompt_ids,
                                                                          batch.prompt_mask, batch.response_ids,
                                                                          DIAG_TIMES)]
    result["generation"] = []
    result["generation_config"] = pipe.generation_config.to_dict()
    for label, overrides in settings:
        t0 = time.time()
        texts = pipe(prompts, batch_size=100, seed=0, **overrides)
        row = {"setting": label, **overrides, **text_metrics(texts, refs), "seconds": round(time.time() - t0, 1),
               "examples": texts[:3]}
        result["generation"].append(row)
        print(name, label, {k: round(v, 2) for k, v in row.items() if k in ("bleu", "chrf", "exact_match")}, flush=True)
    result["references"] = refs[:3]
    tmp = folder / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(folder / "results.json")
    return result


def report(folder: Path) -> str:
    """Markdown tables of every results.json under ``folder``: one row per variant, one column per setting."""
    lines = []
    for task in TASKS:
        results = [json.loads(p.read_text()) for p in sorted((folder / task).glob("*/results.json"))]
        if not results:
            continue
        metric = "bleu" if task == "bible" else "exact_match"
        labels = [label for label, _ in SETTINGS]
        lines += [f"### {task} ({'BLEU' if metric == 'bleu' else 'exact match %'}; training minutes in brackets)", "",
                  "| variant | " + " | ".join(labels) + " | token acc. t=0.9 / 1.0 |",
                  "|---|" + "---|" * (len(labels) + 1)]
        order = {name: i for i, name in enumerate(VARIANTS)}
        for r in sorted(results, key=lambda r: order.get(r["name"], len(order))):
            rows = {g["setting"]: g for g in r["generation"] if "setting" in g}
            cells = [f"{rows[label][metric]:.1f}" if label in rows else "-" for label in labels]
            acc = {a["t"]: a["content_accuracy"] for a in r["accuracy_by_time"]}
            lines.append(f"| {r['name']} ({r['train_seconds'] / 60:.1f}) | " + " | ".join(cells)
                         + f" | {100 * acc.get(0.9, float('nan')):.0f} / {100 * acc.get(1.0, float('nan')):.0f} |")
            extra = [g for g in r["generation"] if g.get("setting") not in labels]
            for g in extra:
                lines.append(f"| &nbsp;&nbsp;{r['name']}, {g['setting']} | " + f"{g[metric]:.1f} |"
                             + " |" * (len(labels)))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="bible")
    parser.add_argument("--variant", default="defaults", choices=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides key=value (model.time_warping=true)")
    parser.add_argument("--name", default=None, help="run name (default: the variant)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablation")
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the task config's)")
    parser.add_argument("--quick", action="store_true", help="skip the 200-step rollout")
    parser.add_argument("--inference-variants", action="store_true",
                        help="also measure the generation options (C1 offsets, ...)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-only", action="store_true", help="re-measure a trained run with the current settings")
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
    settings = [s for s in SETTINGS if not (args.quick and s[1].get("num_steps", 0) > 20)]
    if args.inference_variants:
        base = dict(SETTINGS[1][1])
        settings += [(f"{SETTINGS[1][0]}, {label}", {**base, **extra}) for label, extra in INFERENCE_VARIANTS]
    run(args.task, args.name or args.variant, overrides, args.out, args.test_size, settings, args.steps, args.eval_only)


if __name__ == "__main__":
    main()
