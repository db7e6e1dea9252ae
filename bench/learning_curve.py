"""Quality against training time: our diffusion LM, a same-size GPT-2 and a same-size encoder-decoder (BART),
each on one CPU thread, side by side.

All three train on the task's data with the same tokenizer and optimiser for ``--minutes`` of optimisation time
(evaluation excluded), with a learning-rate schedule sized to that budget, and are scored every
``minutes / evals`` on the same validation pairs: ours by its default sampler (``training.train``'s
evaluation), the peers by greedy decoding. Writes ``<out>/curve.json`` and ``<out>/learning_curve.png``
(BLEU and chrF against minutes, with the copy-the-input line). ``--model all`` runs three processes at once:
give it three free cores, or run ``--model ours``, ``gpt2`` and ``bart`` one after another into the same
``--out`` (the peers wait for ours's tokenizer) and redraw with ``--report``.

    python bench/learning_curve.py --task bible --minutes 60 --evals 8 --out runs/curve_bible
    python bench/learning_curve.py --report runs/curve_bible          # redraw from curve.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from ar_baseline import PEERS, peer_batch, peer_generate, peer_like, token_pairs, train_peer
from tasks import TASKS, WRITTEN, command_line_overrides, task_files

ROOT = Path(__file__).resolve().parents[1]

MODELS = ("ours", *PEERS)
LABELS = {"ours": "ours (diffusion)", "gpt2": "GPT-2 (same size)", "bart": "BART encoder-decoder (same size)"}
STYLES = {"ours": "o-", "gpt2": "s--", "bart": "^-."}


def _config(task: str, out: Path, extra: list[str]):
    from diffusion_lm.training.config import load_config

    paths, config_path, overrides = task_files(task, out)
    args = overrides + ["--output_dir", str(out / "ours"), "--data.train_files", f"[{paths['train']}]",
                        "--data.validation_files", f"[{paths['validation']}]", "--trackers", "[]"] + extra
    return paths, load_config(config_path, args)


def seconds_per_step(step_fn, warmup: int = 3, steps: int = 10) -> float:
    for _ in range(warmup):
        step_fn()
    start = time.perf_counter()
    for _ in range(steps):
        step_fn()
    return (time.perf_counter() - start) / steps


def run_ours(task: str, out: Path, minutes: float, evals: int, extra: list[str]) -> dict:
    """Calibrate steps per minute on a copy of the model, then train the budget with evaluations along the way."""
    from diffusion_lm import build_model, train_tokenizer
    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.training.train import train

    paths, config = _config(task, out, extra)
    rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")][:5000]
    spec = config.tokenizer.train
    tok = train_tokenizer([t for r in rows for t in (r["prompt"], r["response"])], spec.kind, spec.vocab_size,
                          spec.lowercase)
    probe, tok = build_model(config.model_config(), tok)
    m = probe.config
    pairs = token_pairs(tok, rows, m.max_prompt_length, m.max_response_length)[: config.optim.batch_size]
    batch = encode_pairs(tok, [tok.decode(p) for p, _ in pairs], [tok.decode(r) for _, r in pairs],
                         m.max_prompt_length, m.max_response_length)
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-4)

    def step():
        probe.train()
        loss = probe(**batch.as_kwargs()).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    per_step = seconds_per_step(step)
    steps = max(evals, int(minutes * 60 / per_step))
    extra = extra + ["--optim.max_steps", str(steps), "--eval.every", str(max(1, steps // evals)),
                     "--checkpoint.every", str(steps), "--log_every", "50"]
    _, config = _config(task, out, extra)
    train(config)
    points = [r for r in map(json.loads, open(out / "ours" / "metrics.jsonl")) if "bleu" in r]
    return {"model": "ours", "seconds_per_step": per_step, "steps": steps,
            "points": [{k: r[k] for k in ("step", "train_minutes", "bleu", "chrf", "exact_match") if k in r}
                       for r in points],
            "copy": {k[5:]: v for k, v in points[-1].items() if k.startswith("copy_")} if points else {}}


def run_peer(kind: str, task: str, out: Path, minutes: float, evals: int, extra: list[str]) -> dict:
    """The peer ``kind`` (GPT-2 or BART) sized to our model, on the tokenizer ours trained (waits for it), scored on
    the same validation pairs."""
    from transformers import AutoTokenizer

    from diffusion_lm import build_model
    from diffusion_lm.training.evaluation import text_metrics
    from diffusion_lm.training.train import _validation_text

    paths, config = _config(task, out, extra)
    saved = out / "ours" / "tokenizer"
    while not (saved / "tokenizer_config.json").exists():
        time.sleep(5)
    time.sleep(2)
    tok = AutoTokenizer.from_pretrained(saved)
    ours, tok = build_model(config.model_config(), tok)
    m = ours.config
    torch.manual_seed(config.seed)
    model = peer_like(kind, m, len(tok) + 1, sum(p.numel() for p in ours.parameters()))
    sep, pad = len(tok), m.pad_token_id
    rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")]
    pairs = token_pairs(tok, rows, m.max_prompt_length, m.max_response_length)
    import datasets

    val_raw = datasets.Dataset.from_list([json.loads(line) for line in open(paths["validation"], encoding="utf-8")])
    prompts, refs = _validation_text(val_raw, config, tok, m, config.eval.generate)

    def evaluate(net, minutes_done):
        scores = text_metrics(peer_generate(net, tok, prompts, sep, pad, m.max_response_length), refs)
        print(f"{PEERS[kind]} at {minutes_done:.1f} min: {scores}", flush=True)
        return scores

    o = config.optim
    probe = peer_like(kind, m, len(tok) + 1, sum(p.numel() for p in ours.parameters()))
    probe_pairs = pairs[: o.batch_size]
    popt = torch.optim.AdamW(probe.parameters(), lr=1e-4)

    def step():
        loss = probe(**peer_batch(probe, [p for p, _ in probe_pairs], [r for _, r in probe_pairs], sep, pad)).loss
        popt.zero_grad()
        loss.backward()
        popt.step()

    per_step = seconds_per_step(step)
    steps = max(evals, int(minutes * 60 / per_step))
    _, done, _, points = train_peer(model, pairs, sep, pad, steps=steps, batch_size=o.batch_size, lr=o.lr,
                                    warmup=o.warmup_steps, seconds=minutes * 60,
                                    eval_every_seconds=minutes * 60 / evals, evaluate=evaluate, seed=config.seed)
    return {"model": kind, "seconds_per_step": per_step, "steps": done, "params": model.num_parameters(),
            "points": points}


def combine(out: Path, task: str, minutes: float) -> None:
    """curve.json from the parts there are (ours.json, gpt2.json, bart.json), also from separate ``--model`` runs."""
    from diffusion_lm.common.atomic import write_json_atomic

    parts = {which: json.loads((out / f"{which}.json").read_text())
             for which in MODELS if (out / f"{which}.json").exists()}
    write_json_atomic(out / "curve.json", {"task": task, "minutes": minutes, **parts})


def report(out: Path) -> None:
    """Redraw learning_curve.png (exact match or BLEU, and chrF) from curve.json (assembled from ours.json,
    gpt2.json and bart.json when missing)."""
    if not (out / "curve.json").exists():
        combine(out, json.loads((out / "ours.json").read_text()).get("task", "bible"), float("nan"))
    results = json.loads((out / "curve.json").read_text())
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    headline = "exact_match" if results["task"] in WRITTEN else "bleu"  # a written task's score is exact match
    for ax, metric in zip(axes, (headline, "chrf")):
        for which in (w for w in MODELS if w in results):
            pts = [(p["train_minutes"], p[metric]) for p in results[which]["points"]]
            if pts:
                ax.plot(*zip(*pts), STYLES[which], label=LABELS[which])
        copy = results["ours"].get("copy", {}).get(metric)
        if copy is not None:
            ax.axhline(copy, color="grey", linestyle=":", label="copy the input")
        ax.set_xlabel("training minutes (one CPU thread each)")
        ax.set_ylabel({"bleu": "BLEU", "exact_match": "exact match %"}.get(metric, "chrF"))
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{results['task']}: quality against training time")
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)
    print(out / "learning_curve.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="bible")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--evals", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--model", choices=("all", *MODELS), default="all")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for ours, key=value")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    out = args.out or ROOT / "runs" / f"curve_{args.task}"
    out.mkdir(parents=True, exist_ok=True)
    extra = command_line_overrides(args.set)
    if args.model == "all":  # three processes, one thread each, side by side
        cmd = [sys.executable, __file__, "--task", args.task, "--minutes", str(args.minutes),
               "--evals", str(args.evals), "--out", str(out), "--set", *args.set, "--model"]
        procs = [subprocess.Popen(cmd + [which]) for which in MODELS]
        if any(p.wait() for p in procs):
            raise SystemExit("a learning-curve process failed; see its output above")
        combine(out, args.task, args.minutes)
        report(out)
        return
    torch.set_num_threads(1)
    if args.model == "ours":
        result = run_ours(args.task, out, args.minutes, args.evals, extra)
    else:
        result = run_peer(args.model, args.task, out, args.minutes, args.evals, extra)
    from diffusion_lm.common.atomic import write_json_atomic

    write_json_atomic(out / f"{args.model}.json", {"task": args.task, **result})


if __name__ == "__main__":
    main()
