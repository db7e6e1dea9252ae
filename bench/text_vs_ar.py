"""Head-to-head: our diffusion LM against two same-size peers, GPT-2 and an encoder-decoder (BART), in one run.

For a task (``bible``: KJV -> WEB verses, the README demo's config and budget; ``g2p``: spelling ->
pronunciation; ``inflect``: lemma + Penn tag -> inflected form; ``sort``: sort 4-12 words; see
``bench/tasks.py``), in this order:
  1. train ours (``training.train.train``, the task's config with the package defaults);
  2. train each peer (``bench/ar_baseline.py``: transformers' GPT2LMHeadModel and BartForConditionalGeneration
     from configs, width matched to our parameter count, same tokenizer, AdamW and schedule) for the same
     number of steps, and a second one of each for the same optimisation time as ours took;
  3. score every model on the same held-out pairs (the first ``--test-size`` test rows that fit, one
     seed): BLEU, chrF (sacrebleu), exact match, token and character error rates (g2p's phoneme error rate,
     inflect's character error rate); ours with one x0 prediction and at ``--steps`` (5/10/20/50/200) steps
     of ``ddim`` (eta 0 and 1) and ``dpm_solver++`` with its default generation settings (unclamped),
     the peers with greedy decoding (KV cache);
  4. generation throughput at batch 1 and 64 (ours at 10 steps, the equal-steps peers) and the peak memory.
Writes ``<out>/results.json`` (with every model's outputs on the test pairs), ``report.md`` and ``quality_vs_nfe.png``.

    python bench/text_vs_ar.py --task bible --out runs/bench_bible     # ~50 min on 2 CPU cores
    python bench/text_vs_ar.py --task sort --out runs/bench_sort
    python bench/text_vs_ar.py --task g2p --out runs/h2h_g2p --steps 1 10 20   # skip the slow 50/200-step rows
    python bench/text_vs_ar.py --report-only --out runs/bench_bible    # redraw tables and plot
    python bench/text_vs_ar.py --task bible --ours runs/abl/bible/defaults/run/model --ours-seconds 1297
        # score a trained one
    python bench/text_vs_ar.py --task bible --ours runs/demo/model --ours-seconds 1000 --peers bart --budgets steps \
        --steps 1 4 --test-size 300                 # one peer at one budget beside a trained model
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import torch

from ar_baseline import PEERS, peer_generate, peer_like, peer_warmup, token_pairs, train_peer
from tasks import ERROR_RATES, TASKS, command_line_overrides, metrics, task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]

STEPS = [1, 5, 10, 20, 50, 200]
SAMPLERS = [("ddim", 0.0), ("ddim", 1.0), ("dpm_solver++", 0.0)]


def train_ours(out: Path, paths: dict, config_path: Path | None, overrides: list[str],
               extra: list[str]) -> tuple[Path, float, dict]:
    from accelerate.state import AcceleratorState

    from diffusion_lm.training.config import load_config
    from diffusion_lm.training.train import train

    run = out / "ours"
    args = list(overrides) + ["--output_dir", str(run), "--data.train_files", f"[{paths['train']}]",
                              "--data.validation_files", f"[{paths['validation']}]", "--eval.generate", "0",
                              "--trackers", "[]"] + extra
    config = load_config(config_path, args)
    result = train(config)
    AcceleratorState._reset_state(reset_partial_state=True)
    return run / "model", result["train_seconds"], config  # the optimisation loop alone, as for GPT-2


def train_ar(pipe, pairs: list, kind: str, steps: int, batch_size: int, lr: float, warmup: int, seconds: float | None,
             seed: int = 0):
    """The peer ``kind`` (GPT-2 or BART) trained on the same pairs with the same optimiser; for ``steps`` steps, or
    ``seconds`` if given."""
    torch.manual_seed(seed)
    m = pipe.model.config
    model = peer_like(kind, m, len(pipe.tokenizer) + 1, sum(p.numel() for p in pipe.model.parameters()))
    model, done, spent, _ = train_peer(model, pairs, len(pipe.tokenizer), m.pad_token_id, steps=steps,
                                       batch_size=batch_size, lr=lr, warmup=warmup, seconds=seconds, seed=seed)
    return model, done, spent


def ar_generate(model, pipe, prompts: list[str], batch_size: int) -> list[str]:
    """Greedy decoding with the KV cache (``ar_baseline.peer_generate``) with the pipeline's tokenizer."""
    m = pipe.model.config
    return peer_generate(model, pipe.tokenizer, prompts, len(pipe.tokenizer), m.pad_token_id, m.max_response_length,
                         batch_size)


def train_peers(pipe, paths: dict, optim, seconds: float, prompts: list[str], refs: list[str],
                kinds: tuple[str, ...] = tuple(PEERS), budgets: tuple[str, ...] = ("steps", "time"),
                ) -> tuple[list[dict], dict]:
    """Train and score each peer of ``kinds`` at equal steps and at equal time (``budgets``); the rows and the
    models."""
    from diffusion_lm.training.evaluation import text_metrics

    m = pipe.model.config
    with open(paths["train"], encoding="utf-8") as f:
        pairs = token_pairs(pipe.tokenizer, [json.loads(line) for line in f], m.max_prompt_length,
                            m.max_response_length)
    rows, models = [], {}
    o = optim
    for kind, label in ((k, PEERS[k]) for k in kinds):
        for budget, limit in (("equal steps", None), ("equal time", seconds)):
            if budget.split()[1] not in budgets:
                continue
            model, steps, secs = train_ar(pipe, pairs, kind, o.max_steps, o.batch_size, o.lr, o.warmup_steps, limit)
            texts = ar_generate(model, pipe, prompts, 64)
            rows.append({"model": label, "budget": budget, "train_steps": steps, "train_seconds": round(secs, 1),
                         "warmup_steps": peer_warmup(model, o.warmup_steps, o.max_steps),
                         **text_metrics(texts, refs), "params": model.num_parameters(), "examples": texts[:5],
                         "outputs": texts})
            print(label, budget, {k: v for k, v in rows[-1].items() if k not in ("examples", "outputs")}, flush=True)
            if budget == "equal steps" or label not in models:
                models[label] = model
    return rows, models


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
                        help="a model already trained with this task's config (and --set): score it instead of "
                             "training ours")
    parser.add_argument("--ours-seconds", type=float, default=None, help="with --ours: its optimisation seconds "
                                                                         "(GPT-2's equal time)")
    parser.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS), help="the peers to train")
    parser.add_argument("--budgets", nargs="+", choices=["steps", "time"], default=["steps", "time"],
                        help="train each peer at equal steps, at equal time, or both")
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
    extra = command_line_overrides(args.set)
    if args.train_steps:
        extra += ["--optim.max_steps", str(args.train_steps)]
        if args.train_steps < 100:  # a smoke run: warm up at once
            extra += ["--optim.warmup_steps", "2"]
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
                     "ours_train_steps": config.optim.max_steps,
                     "ours_params": sum(p.numel() for p in pipe.model.parameters()), "overrides": args.set}
    test = test_pairs(paths["test"], pipe.tokenizer, m.max_prompt_length, m.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in test], [r["response"] for r in test]
    results["copy"] = text_metrics(prompts, refs)

    results["ar"], peers = train_peers(pipe, paths, config.optim, seconds, prompts, refs, tuple(args.peers),
                                       tuple(args.budgets))

    for method, eta in SAMPLERS:
        for n in args.steps:
            if n == 1 and (method, eta) != SAMPLERS[0]:
                continue  # one step is one x0 prediction, the same for every sampler
            texts = pipe(prompts, num_steps=n, method=method, eta=eta, batch_size=100, seed=0)
            row = {"method": method, "eta": eta, "steps": n, **text_metrics(texts, refs), "examples": texts[:5],
                   "outputs": texts}
            results["ours"].append(row)
            print({k: v for k, v in row.items() if k not in ("examples", "outputs")}, flush=True)

    fns = {"ours, 10 steps": lambda chunk, b: pipe(chunk, num_steps=10, batch_size=b)}
    for label, model in peers.items():
        fns[f"{label} greedy"] = lambda chunk, b, model=model: ar_generate(model, pipe, chunk, b)
    for batch in (1, 64):
        for name, fn in fns.items():
            results["throughput"].append({"model": name, **throughput(fn, prompts, batch)})
    results["peak_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["references"] = refs
    results["prompts"] = prompts
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out / "results.json")
    report(results, out)


def _peer(row: dict) -> str:
    return row.get("model", "GPT-2")  # results written before BART have GPT-2 rows only


def _cells(row: dict, error: str) -> str:
    return (f"{row['bleu']:.1f} / {row['chrf']:.1f} / {row['exact_match']:.1f} / "
            + (f"{row[error]:.1f}" if error in row else "-"))


def report(results: dict, out: Path) -> None:
    """Markdown tables and the quality-against-NFE plot."""
    task = results["task"]
    metric, error = metrics(task)
    label = ERROR_RATES[task][1]
    copy = results["copy"]
    over = "space-separated tokens" if error == "token_error_rate" else "characters (spaces left out)"
    lines = [f"## {task}: quality (BLEU / chrF / exact match % / {label} %)", "",
             (f"Copy-the-input baseline: BLEU {copy['bleu']:.2f}, chrF {copy['chrf']:.2f}, {label} "
              + (f"{copy[error]:.1f}." if error in copy else "-.")), "",
             f"{label}: edit distance over {over} / reference length, in percent.", ""]
    for r in results["ar"]:
        lines.append(f"- {_peer(r)} ({r['params'] / 1e6:.2f}M params), {r['budget']} ({r['train_steps']} steps, "
                     f"{r.get('warmup_steps', '?')} warm-up, {r['train_seconds']} s): BLEU {r['bleu']:.2f}, chrF "
                     f"{r['chrf']:.2f}, EM {r['exact_match']:.1f}"
                     + (f", {label} {r[error]:.1f}" if error in r else ""))
    steps = sorted({r["steps"] for r in results["ours"]})
    lines += ["", (f"Ours ({results['ours_params'] / 1e6:.2f}M params, {results['ours_train_steps']} steps, "
                   f"{results['ours_train_seconds']} s), unclamped rollouts (1 step = one x0 prediction), "
                   f"BLEU / chrF / EM / {label}:"), "",
              "| sampler | " + " | ".join(f"{n}" for n in steps) + " |", "|---|" + "---|" * len(steps)]
    one = next((r for r in results["ours"] if r["steps"] == 1), None)
    for method, eta in SAMPLERS:
        cells = []
        for n in steps:
            r = one if n == 1 else next((r for r in results["ours"]
                                         if (r["method"], r["eta"], r["steps"]) == (method, eta, n)), None)
            cells.append(_cells(r, error) if r else "-")
        lines.append(f"| {method}{f' eta={eta:g}' if method == 'ddim' else ''} | " + " | ".join(cells) + " |")
    lines += ["", "All models on the same test pairs (ours: ddim eta=1, the default sampler), BLEU / chrF / EM / "
                  f"{label}:", "",
              "| model | budget | train steps | train s | params (M) | score |", "|---|---|---|---|---|---|"]
    for r in results["ours"]:
        if (r["method"], r["eta"]) == ("ddim", 1.0) or r["steps"] == 1:
            lines.append(f"| ours, {r['steps']} step{'s' if r['steps'] > 1 else ''} | - | "
                         f"{results['ours_train_steps']} | "
                         f"{results['ours_train_seconds']} | {results['ours_params'] / 1e6:.2f} | {_cells(r, error)} |")
    for r in results["ar"]:
        lines.append(f"| {_peer(r)} greedy | {r['budget']} | {r['train_steps']} | {r['train_seconds']} | "
                     f"{r['params'] / 1e6:.2f} | {_cells(r, error)} |")
    lines += ["", "Generation throughput on this machine (one run, best of 3):", "", "| model | batch | samples/s |",
              "|---|---|---|"]
    for r in results["throughput"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['samples_per_s']} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results, out, metric)


def plot(results: dict, out: Path, metric: str) -> None:
    """quality_vs_nfe.png: ours against sampler steps, each peer (equal steps, equal time) as a horizontal line."""
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
    colours = {"GPT-2": "black", "BART": "tab:red"}
    for r in results["ar"]:
        ax.axhline(r[metric], color=colours.get(_peer(r), "grey"),
                   linestyle="-" if r["budget"] == "equal steps" else ":", label=f"{_peer(r)}, {r['budget']}")
    if metric == "bleu":
        ax.axhline(results["copy"]["bleu"], color="grey", linestyle="--", label="copy the input")
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps (model evaluations)")
    ax.set_ylabel("BLEU" if metric == "bleu" else "exact match %")
    ax.set_title(f"{results['task']}: ours against steps, GPT-2 and BART greedy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_nfe.png", dpi=110)


if __name__ == "__main__":
    main()
