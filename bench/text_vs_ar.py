"""Head-to-head: our diffusion LM against an autoregressive GPT-2 of the same size, on the same data, in one run.

For a task (``bible``: KJV -> WEB verses, the README demo's config and budget; ``g2p``: spelling ->
pronunciation; ``sort``: sort 4-12 words; see ``bench/tasks.py``), in this order:
  1. train ours (``training.train.train``, the task's config with the package defaults);
  2. train GPT-2 (transformers' GPT2LMHeadModel from a config, width matched to our parameter count,
     same tokenizer, AdamW and schedule) for the same number of steps, and a second one for the same
     optimisation time as ours took;
  3. score every model on the same held-out pairs (the first ``--test-size`` test rows that fit, one
     seed): BLEU, chrF (sacrebleu), exact match; ours with one x0 prediction and at 5/10/20/50/200 steps
     of ``ddim`` (eta 0 and 1) and ``dpm_solver++`` with its default generation settings (unclamped),
     GPT-2 with greedy decoding (KV cache);
  4. generation throughput at batch 1 and 64 (ours at 10 steps) and the process's peak memory.
Writes ``<out>/results.json``, ``report.md`` and ``quality_vs_nfe.png``.

    python bench/text_vs_ar.py --task bible --out runs/bench_bible     # ~50 min on 2 CPU cores
    python bench/text_vs_ar.py --task sort --out runs/bench_sort
    python bench/text_vs_ar.py --report-only --out runs/bench_bible    # redraw tables and plot
    python bench/text_vs_ar.py --task bible --ours runs/abl/bible/defaults/run/model --ours-seconds 1297   # score a trained one
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import torch
from ar_baseline import gpt2_generate, gpt2_like, token_pairs, train_gpt2
from tasks import TASKS, task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]


STEPS = [1, 5, 10, 20, 50, 200]
SAMPLERS = [("ddim", 0.0), ("ddim", 1.0), ("dpm_solver++", 0.0)]


def train_ours(out: Path, paths: dict, config_path: Path | None, overrides: list[str], extra: list[str]) -> tuple[Path, float, dict]:
    from accelerate.state import AcceleratorState

    from diffusion_lm.training.config import load_config
    from diffusion_lm.training.train import train

    run = out / "ours"
    args = list(overrides) + ["--output_dir", str(run), "--data.train_files", f"[{paths['train']}]",
                              "--data.validation_files", f"[{paths['validation']}]", "--eval.generate", "0", "--trackers", "[]"] + extra
    config = load_config(config_path, args)
    result = train(config)
    AcceleratorState._reset_state(reset_partial_state=True)
    return run / "model", result["train_seconds"], config  # the optimisation loop alone, as for GPT-2


def train_ar(pipe, paths: dict, steps: int, batch_size: int, lr: float, warmup: int, seconds: float | None, seed: int = 0):
    """GPT-2 trained on the same pairs with the same optimiser; for ``steps`` steps, or ``seconds`` if given."""
    torch.manual_seed(seed)
    m = pipe.model.config
    model = gpt2_like(m, len(pipe.tokenizer) + 1, sum(p.numel() for p in pipe.model.parameters()))
    rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")]
    pairs = token_pairs(pipe.tokenizer, rows, m.max_prompt_length, m.max_response_length)
    model, done, spent, _ = train_gpt2(model, pairs, len(pipe.tokenizer), m.pad_token_id, steps=steps, batch_size=batch_size,
                                       lr=lr, warmup=warmup, seconds=seconds, seed=seed)
    return model, done, spent


def ar_generate(model, pipe, prompts: list[str], batch_size: int) -> list[str]:
    """Greedy decoding with the KV cache (``ar_baseline.gpt2_generate``) with the pipeline's tokenizer."""
    m = pipe.model.config
    return gpt2_generate(model, pipe.tokenizer, prompts, len(pipe.tokenizer), m.pad_token_id, m.max_response_length, batch_size)


def throughput(fn, prompts: list[str], batch: int, repeats: int = 3) -> dict:
    """Samples/s of ``fn(prompts, batch) -> texts`` at one batch size (best of repeats)."""
    chunk = (prompts * math.ceil(batch / len(prompts)))[:batch]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(chunk, batch)
        best = min(best, time.perf_counter() - start)
    return {"batch": batch, "samples_per_s": round(batch / best, 2), "seconds": round(best, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="bible")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--steps", type=int, nargs="+", default=STEPS)
    parser.add_argument("--train-steps", type=int, default=None, help="override the training steps (smoke runs)")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for ours, key=value")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one run, one measurement)")
    parser.add_argument("--report-only", action="store_true", help="redraw the tables and plot from <out>/results.json")
    parser.add_argument("--ours", type=Path, default=None,
                        help="a model already trained with this task's config (and --set): score it instead of training ours")
    parser.add_argument("--ours-seconds", type=float, default=None, help="with --ours: its optimisation seconds (GPT-2's equal time)")
    args = parser.parse_args()
    out = args.out or ROOT / "runs" / f"bench_{args.task}"
    if args.report_only:
        report(json.loads((out / "results.json").read_text()), out)
        return
    torch.set_num_threads(args.threads)
    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.evaluation import text_metrics

    out.mkdir(parents=True, exist_ok=True)
    paths, config_path, overrides = task_files(args.task, out)
    extra = [x for item in args.set for x in ("--" + item.partition("=")[0], item.partition("=")[2])]
    if args.train_steps:
        extra += ["--optim.max_steps", str(args.train_steps), "--optim.warmup_steps", "2"]
    if args.ours is not None:
        if args.ours_seconds is None:
            parser.error("--ours needs --ours-seconds (its training time, which GPT-2's equal-time run gets)")
        from diffusion_lm.training.config import load_config

        folder, seconds, config = args.ours, args.ours_seconds, load_config(config_path, list(overrides) + extra)
    else:
        folder, seconds, config = train_ours(out, paths, config_path, overrides, extra)
    pipe = DiffusionLMPipeline.from_pretrained(folder)
    m = pipe.model.config
    results: dict = {"task": args.task, "ours": [], "ar": [], "throughput": [], "ours_train_seconds": round(seconds, 1),
                     "ours_train_steps": config.optim.max_steps, "ours_params": sum(p.numel() for p in pipe.model.parameters()),
                     "overrides": args.set}
    test = test_pairs(paths["test"], pipe.tokenizer, m.max_prompt_length, m.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in test], [r["response"] for r in test]
    results["copy"] = text_metrics(prompts, refs)

    o = config.optim
    ar_steps, steps_s, secs_s = train_ar(pipe, paths, o.max_steps, o.batch_size, o.lr, o.warmup_steps, None)
    ar_time, steps_t, secs_t = train_ar(pipe, paths, o.max_steps, o.batch_size, o.lr, o.warmup_steps, seconds)
    for name, model, steps, secs in (("equal steps", ar_steps, steps_s, secs_s), ("equal time", ar_time, steps_t, secs_t)):
        texts = ar_generate(model, pipe, prompts, 64)
        results["ar"].append({"budget": name, "train_steps": steps, "train_seconds": round(secs, 1), **text_metrics(texts, refs),
                              "params": model.num_parameters(), "examples": texts[:5]})
        print("GPT-2", name, {k: v for k, v in results["ar"][-1].items() if k != "examples"}, flush=True)

    for method, eta in SAMPLERS:
        for n in args.steps:
            if n == 1 and (method, eta) != SAMPLERS[0]:
                continue  # one step is one x0 prediction, the same for every sampler
            texts = pipe(prompts, num_steps=n, method=method, eta=eta, batch_size=100, seed=0)
            row = {"method": method, "eta": eta, "steps": n, **text_metrics(texts, refs), "examples": texts[:5]}
            results["ours"].append(row)
            print({k: v for k, v in row.items() if k != "examples"}, flush=True)

    ours_fn = lambda chunk, b: pipe(chunk, num_steps=10, batch_size=b)
    ar_fn = lambda chunk, b: ar_generate(ar_steps, pipe, chunk, b)
    for batch in (1, 64):
        for name, fn in (("ours, 10 steps", ours_fn), ("GPT-2 greedy", ar_fn)):
            results["throughput"].append({"model": name, **throughput(fn, prompts, batch)})
    results["peak_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["references"] = refs[:5]
    results["prompts"] = prompts[:5]
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out / "results.json")
    report(results, out)


def report(results: dict, out: Path) -> None:
    """Markdown tables and the quality-against-NFE plot."""
    metric = "bleu" if results["task"] == "bible" else "exact_match"
    lines = [f"## {results['task']}: quality (BLEU / chrF / exact match %)", "",
             f"Copy-the-input baseline: BLEU {results['copy']['bleu']:.2f}, chrF {results['copy']['chrf']:.2f}.", ""]
    for r in results["ar"]:
        lines.append(f"- GPT-2 ({r['params'] / 1e6:.2f}M params), {r['budget']} ({r['train_steps']} steps, {r['train_seconds']} s): "
                     f"BLEU {r['bleu']:.2f}, chrF {r['chrf']:.2f}, EM {r['exact_match']:.1f}")
    steps = sorted({r["steps"] for r in results["ours"]})
    lines += ["", f"Ours ({results['ours_params'] / 1e6:.2f}M params, {results['ours_train_steps']} steps, "
              f"{results['ours_train_seconds']} s), unclamped rollouts (1 step = one x0 prediction):", "",
              "| sampler | " + " | ".join(f"{n}" for n in steps) + " |", "|---|" + "---|" * len(steps)]
    one = next((r for r in results["ours"] if r["steps"] == 1), None)
    for method, eta in SAMPLERS:
        cells = []
        for n in steps:
            r = one if n == 1 else next((r for r in results["ours"] if (r["method"], r["eta"], r["steps"]) == (method, eta, n)), None)
            cells.append(f"{r['bleu']:.1f} / {r['chrf']:.1f} / {r['exact_match']:.0f}" if r else "-")
        lines.append(f"| {method}{f' eta={eta:g}' if method == 'ddim' else ''} | " + " | ".join(cells) + " |")
    lines += ["", "Generation throughput on this machine (one run, best of 3):", "", "| model | batch | samples/s |", "|---|---|---|"]
    for r in results["throughput"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['samples_per_s']} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method, eta in SAMPLERS:
        pts = sorted((r["steps"], r[metric]) for r in results["ours"] if r["steps"] == 1
                     or (r["method"], r["eta"]) == (method, eta))
        ax.plot(*zip(*pts), marker="o", label=method + (f" (eta={eta:g})" if method == "ddim" else ""))
    for r, style in zip(results["ar"], ("-", ":")):
        ax.axhline(r[metric], color="black", linestyle=style, label=f"GPT-2, {r['budget']}")
    if metric == "bleu":
        ax.axhline(results["copy"]["bleu"], color="grey", linestyle="--", label="copy the input")
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps (model evaluations)")
    ax.set_ylabel("BLEU" if metric == "bleu" else "exact match %")
    ax.set_title(f"{results['task']}: ours against steps, GPT-2 greedy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_nfe.png", dpi=110)


if __name__ == "__main__":
    main()
