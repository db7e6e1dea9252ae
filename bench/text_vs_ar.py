"""Head-to-head: our diffusion LM against an autoregressive GPT-2 of the same size, on the same data, in one run.

For each task (``bible``: KJV -> WEB verses; ``sort``: sort 4-12 words), in this order:
  1. train ours (training.train.train) with and without self-conditioning, for the same steps;
  2. train GPT-2 (transformers' GPT2LMHeadModel from a config, width matched to our parameter
     count, same tokenizer, AdamW and schedule) for the same number of training tokens, and a second
     one for the same wall time as ours took;
  3. score every model on the same held-out pairs: BLEU, chrF (sacrebleu), exact match; ours at
     5/10/20/50/200/1000 steps of ddim (eta 0 and 1) and dpm_solver++, with and without MBR over 5
     samples, with and without clamping; GPT-2 with greedy decoding (KV cache);
  4. generation throughput (samples/s, tokens/s) at batch 1 and 64 for ours (dpm_solver++ at 20
     steps) and GPT-2, and peak memory.
Writes ``<out>/results.json``, a plot of quality against NFE and the markdown tables.

    python bench/text_vs_ar.py --task sort --out runs/bench_sort       # ~10 min on 2 CPU cores
    python bench/text_vs_ar.py --task bible --out runs/bench_bible     # ~1 h on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ar_baseline import ar_batch, gpt2_like  # noqa: E402

STEPS = [5, 10, 20, 50, 200, 1000]
SAMPLERS = [("ddim", 0.0), ("ddim", 1.0), ("dpm_solver++", 0.0)]


def task_files(task: str, out: Path) -> tuple[dict, list[str]]:
    """Data files and the config overrides that define the task's model and training."""
    from training.build_data import ensure, write_jsonl

    if task == "bible":
        paths = ensure("bible")
        return paths, ["--config", str(ROOT / "configs" / "demo.yaml")]
    from diffusion_lm.data import synthetic_pairs

    folder = out / "data"
    paths = {}
    for split, n, seed in (("train", 100_000, 1), ("validation", 300, 2), ("test", 300, 3)):
        paths[split] = folder / f"{split}.jsonl"
        write_jsonl([{"prompt": p, "response": r} for p, r in synthetic_pairs(n, "sort", 50, 4, 12, seed)], paths[split])
    overrides = ["--model.embedding_dim", "16", "--model.hidden_size", "64", "--model.num_layers", "4", "--model.num_heads", "4",
                 "--model.mlp_ratio", "2.0", "--model.max_prompt_length", "16", "--model.max_response_length", "16",
                 "--tokenizer.train", "{kind: wordlevel, vocab_size: 64}", "--optim.lr", "2.0e-3", "--optim.max_steps", "3000",
                 "--optim.batch_size", "64", "--optim.warmup_steps", "150", "--optim.ema_decay", "0.999"]
    return paths, overrides


def train_ours(task: str, out: Path, paths: dict, overrides: list[str], self_conditioning: bool) -> tuple[Path, float]:
    from accelerate.state import AcceleratorState

    from training.config import load_config
    from training.train import train

    config_path = None
    args = list(overrides)
    if args[:1] == ["--config"]:
        config_path, args = Path(args[1]), args[2:]
    run = out / f"ours_{'sc' if self_conditioning else 'plain'}"
    args += ["--output_dir", str(run), "--data.train_files", f"[{paths['train']}]", "--data.validation_files", f"[{paths['validation']}]",
             "--model.self_conditioning", str(self_conditioning).lower(), "--eval.generate", "64", "--trackers", "[]"]
    if config_path is None:
        args += ["--eval.every", "1000", "--checkpoint.every", "1000"]
    result = train(load_config(config_path, args))
    AcceleratorState._reset_state(reset_partial_state=True)
    return run / "model", result["train_seconds"]  # the optimisation loop alone, as for GPT-2


def train_ar(pipe, paths: dict, steps: int, batch_size: int, lr: float, warmup: int, seconds: float | None, seed: int = 0):
    """GPT-2 trained on the same pairs with the same optimiser; for ``steps`` steps, or ``seconds`` if given."""
    from training.train import lr_lambda

    torch.manual_seed(seed)
    model = gpt2_like(pipe.model.config, len(pipe.tokenizer) + 1, sum(p.numel() for p in pipe.model.parameters())).train()
    tok, sep, m = pipe.tokenizer, len(pipe.tokenizer), pipe.model.config
    rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")]
    ids = lambda texts: tok(texts, add_special_tokens=False)["input_ids"]
    pairs = [(p, r) for p, r in zip(ids([r["prompt"] for r in rows]), ids([r["response"] for r in rows]))
             if len(p) <= m.max_prompt_length and len(r) <= m.max_response_length]

    class Sched:
        max_steps, warmup_steps, min_lr_ratio = steps, warmup, 0.1

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(Sched))
    gen = torch.Generator().manual_seed(seed)
    start, done = time.time(), 0
    while (done < steps) if seconds is None else (time.time() - start < seconds):
        idx = torch.randint(0, len(pairs), (batch_size,), generator=gen).tolist()
        x, attn, labels = ar_batch([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], sep, m.pad_token_id)
        loss = model(input_ids=x, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if done < steps:
            sched.step()
        done += 1
    return model.eval(), done, time.time() - start


@torch.no_grad()
def ar_generate(model, pipe, prompts: list[str], batch_size: int) -> list[str]:
    """Greedy decoding with the KV cache, prompts left-padded, until SEP or the response slots are used."""
    tok, sep, m = pipe.tokenizer, len(pipe.tokenizer), pipe.model.config
    outputs = []
    for start in range(0, len(prompts), batch_size):
        chunk = tok(prompts[start : start + batch_size], add_special_tokens=False)["input_ids"]
        width = max(map(len, chunk)) + 1
        x = torch.full((len(chunk), width), m.pad_token_id)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, p in enumerate(chunk):
            x[row, width - len(p) - 1 :] = torch.tensor(p + [sep])
            attn[row, width - len(p) - 1 :] = 1
        out = model.generate(input_ids=x, attention_mask=attn, max_new_tokens=m.max_response_length + 1, do_sample=False,
                             eos_token_id=sep, pad_token_id=m.pad_token_id)
        for row in out[:, width:].tolist():
            row = row[: row.index(sep)] if sep in row else row
            outputs.append(tok.decode([t for t in row if t != m.pad_token_id], clean_up_tokenization_spaces=True).strip())
    return outputs


def throughput(fn, prompts: list[str], batch: int, repeats: int = 3) -> dict:
    """Samples/s and output tokens/s of ``fn(prompts) -> texts`` at one batch size (best of repeats)."""
    chunk = (prompts * math.ceil(batch / len(prompts)))[:batch]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(chunk, batch)
        best = min(best, time.perf_counter() - start)
    return {"batch": batch, "samples_per_s": round(batch / best, 2), "seconds": round(best, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["sort", "bible"], default="sort")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--steps", type=int, nargs="+", default=STEPS)
    parser.add_argument("--train-steps", type=int, default=None, help="override the training steps (smoke runs)")
    parser.add_argument("--report-only", action="store_true", help="redraw the tables and plot from <out>/results.json")
    args = parser.parse_args()
    if args.report_only:
        out = args.out or ROOT / "runs" / f"bench_{args.task}"
        report(json.loads((out / "results.json").read_text()), out)
        return
    from diffusion_lm.pipeline import DiffusionLMPipeline
    from training.evaluation import text_metrics

    out = args.out or ROOT / "runs" / f"bench_{args.task}"
    out.mkdir(parents=True, exist_ok=True)
    paths, overrides = task_files(args.task, out)
    if args.train_steps:
        overrides = overrides + ["--optim.max_steps", str(args.train_steps), "--optim.warmup_steps", "2"]
    results: dict = {"task": args.task, "ours": [], "ar": [], "throughput": []}

    models = {}
    for sc in (True, False):
        folder, seconds = train_ours(args.task, out, paths, overrides, sc)
        models[sc] = DiffusionLMPipeline.from_pretrained(folder)
        results[f"ours_train_seconds_{'sc' if sc else 'plain'}"] = round(seconds, 1)
    pipe = models[True]
    m = pipe.model.config
    test = [json.loads(line) for line in open(paths["test"], encoding="utf-8")]
    fits = lambda text, n: len(pipe.tokenizer(text, add_special_tokens=False)["input_ids"]) <= n
    test = [r for r in test if fits(r["prompt"], m.max_prompt_length) and fits(r["response"], m.max_response_length)][: args.test_size]
    prompts, refs = [r["prompt"] for r in test], [r["response"] for r in test]
    results["copy"] = text_metrics(prompts, refs)

    from training.config import load_config

    cfg = load_config(Path(overrides[1]) if overrides[:1] == ["--config"] else None,
                      overrides[2:] if overrides[:1] == ["--config"] else overrides + ["--data.train_files", "[x]"])
    o = cfg.optim
    ar_tokens, ar_steps_t, ar_sec_t = train_ar(pipe, paths, o.max_steps, o.batch_size, o.lr, o.warmup_steps, None)
    ar_time, ar_steps_w, ar_sec_w = train_ar(pipe, paths, o.max_steps, o.batch_size, o.lr, o.warmup_steps,
                                             results["ours_train_seconds_sc"])
    for name, model, steps, secs in (("equal tokens", ar_tokens, ar_steps_t, ar_sec_t), ("equal wall time", ar_time, ar_steps_w, ar_sec_w)):
        texts = ar_generate(model, pipe, prompts, 64)
        results["ar"].append({"budget": name, "train_steps": steps, "train_seconds": round(secs, 1), **text_metrics(texts, refs),
                              "params": model.num_parameters()})
        print("AR", name, results["ar"][-1], flush=True)
    results["ours_params"] = sum(p.numel() for p in pipe.model.parameters())

    for sc, p in models.items():
        for method, eta in SAMPLERS:
            for n in args.steps:
                for clamp in (False, True):
                    texts = p(prompts, num_steps=n, method=method, eta=eta, clamp=clamp, batch_size=100, seed=0)
                    row = {"self_conditioning": sc, "method": method, "eta": eta, "steps": n, "clamp": clamp, "mbr": False,
                           **text_metrics(texts, refs)}
                    results["ours"].append(row)
                    print(row, flush=True)
                if n in (10, 20, 200):
                    texts = p(prompts, num_steps=n, method=method, eta=eta, num_samples=5, mbr=True, batch_size=100, seed=0)
                    row = {"self_conditioning": sc, "method": method, "eta": eta, "steps": n, "clamp": False, "mbr": True,
                           **text_metrics(texts, refs)}
                    results["ours"].append(row)
                    print(row, flush=True)

    ours_fn = lambda chunk, b: pipe(chunk, num_steps=20, method="dpm_solver++", batch_size=b)
    ar_fn = lambda chunk, b: ar_generate(ar_tokens, pipe, chunk, b)
    for batch in (1, 64):
        for name, fn in (("ours dpm_solver++ 20 steps", ours_fn), ("GPT-2 greedy", ar_fn)):
            row = {"model": name, **throughput(fn, prompts, batch)}
            row["tokens_per_s"] = round(row["samples_per_s"] * m.max_response_length, 1)
            results["throughput"].append(row)
            print(row, flush=True)
    results["peak_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report(results, out)


def report(results: dict, out: Path) -> None:
    """Markdown tables and the quality-against-NFE plot."""
    lines = [f"## {results['task']}: quality (BLEU / chrF / exact match %)", "",
             f"Copy-the-input baseline: BLEU {results['copy']['bleu']:.2f}, chrF {results['copy']['chrf']:.2f}.", ""]
    for r in results["ar"]:
        lines.append(f"- GPT-2 ({r['params'] / 1e6:.2f}M params), {r['budget']} ({r['train_steps']} steps, {r['train_seconds']} s): "
                     f"BLEU {r['bleu']:.2f}, chrF {r['chrf']:.2f}, EM {r['exact_match']:.1f}")
    lines += ["", f"Ours ({results['ours_params'] / 1e6:.2f}M params):", "",
              "| self-cond | sampler | clamp | MBR | " + " | ".join(f"{n} steps" for n in STEPS) + " |",
              "|---|---|---|---|" + "---|" * len(STEPS)]
    keys = sorted({(r["self_conditioning"], r["method"], r["eta"], r["clamp"], r["mbr"]) for r in results["ours"]},
                  key=lambda k: (not k[0], k[1], k[2], k[3], k[4]))
    for sc, method, eta, clamp, mbr in keys:
        cells = []
        for n in STEPS:
            r = next((r for r in results["ours"] if (r["self_conditioning"], r["method"], r["eta"], r["clamp"], r["mbr"], r["steps"])
                      == (sc, method, eta, clamp, mbr, n)), None)
            cells.append(f"{r['bleu']:.1f} / {r['chrf']:.1f} / {r['exact_match']:.0f}" if r else "-")
        label = method + (f" eta={eta:g}" if method == "ddim" else "")
        lines.append(f"| {'yes' if sc else 'no'} | {label} | {'yes' if clamp else 'no'} | {'5' if mbr else 'no'} | " + " | ".join(cells) + " |")
    lines += ["", "Generation throughput on this machine (one run, best of 3):", "", "| model | batch | samples/s | tokens/s |", "|---|---|---|---|"]
    for r in results["throughput"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['samples_per_s']} | {r['tokens_per_s']} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, sc in zip(axes, (True, False)):
        for method, eta in SAMPLERS:
            for clamp, style in ((False, "-"), (True, "--")):
                pts = sorted((r["steps"], r["bleu"]) for r in results["ours"] if r["self_conditioning"] == sc
                             and r["method"] == method and r["eta"] == eta and r["clamp"] == clamp and not r["mbr"])
                if pts:
                    label = method + (f" (eta={eta:g})" if method == "ddim" else "") + (", clamped" if clamp else "")
                    ax.plot(*zip(*pts), marker="o", linestyle=style, label=label)
        for r, style in zip(results["ar"], ("-", ":")):
            ax.axhline(r["bleu"], color="black", linestyle=style, label=f"GPT-2, {r['budget']}")
        ax.axhline(results["copy"]["bleu"], color="grey", linestyle="--", label="copy the input")
        ax.set_xscale("log")
        ax.set_xlabel("model evaluations (NFE)")
        ax.set_title(f"{results['task']}: ours {'with' if sc else 'without'} self-conditioning")
    axes[0].set_ylabel("BLEU")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_nfe.png", dpi=110)


if __name__ == "__main__":
    main()
