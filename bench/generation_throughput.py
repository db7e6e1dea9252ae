"""Generation throughput at equal output length: our diffusion LM at several step counts vs GPT-2 and BART.

All models are built from the same config (tiny, demo or the sort benchmark's sizes) with a random
table and random weights (speed does not depend on the weights), the peers (GPT-2 and the encoder-decoder
BART) sized to our parameter count (`bench/ar_baseline.py`). Ours fills all ``max_response_length`` slots in
``steps`` model evaluations (``dpm_solver++``); each peer decodes greedily with its KV cache exactly
``max_response_length`` tokens (``min_new_tokens = max_new_tokens``), so all produce the same number of tokens.
Prompts are ``max_prompt_length`` tokens. One process, one thread, the models alternating; best of repeats.

    python bench/generation_throughput.py [--configs sort demo] [--steps 1 5 10 20] [--batches 1 64]

End to end through the public pipeline, for a saved model (e.g. a distilled one): text prompts in, text out,
tokenising and decoding counted for every model (GPT-2 left-pads the prompts, BART right-pads them into its
encoder; both decode the new tokens), and the peak memory of each model generating at the largest batch, each in a
process of its own:

    python bench/generation_throughput.py --model runs/distill_bible_k1/model --steps 1 2 4 20
    python bench/generation_throughput.py --model runs/demo/fast/model --also runs/demo/model --steps 1
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from ar_baseline import PEERS, peer_like, seq2seq_batch

ROOT = Path(__file__).resolve().parents[1]

SORT = dict(embedding_dim=16, hidden_size=64, num_layers=4, num_heads=4, mlp_ratio=2.0, max_prompt_length=16,
            max_response_length=16, self_conditioning=True, vocab=64)


def build(config_name: str):
    """Our model (random table over a word-level vocabulary) and the peers of the same size, by report name."""
    from diffusion_lm import DiffusionLMConfig, build_model, train_tokenizer
    from diffusion_lm.training.config import load_config

    if config_name == "sort":
        settings = dict(SORT)
        vocab = settings.pop("vocab")
        cfg = DiffusionLMConfig(**settings)
    else:
        cfg = load_config(ROOT / "configs" / f"{config_name}.yaml", ["--data.train_files", "[x]"]).model_config()
        vocab = 4000
    tok = train_tokenizer([" ".join(f"w{i}" for i in range(vocab))] * 2, kind="wordlevel", vocab_size=vocab + 10)
    model, tok = build_model(cfg, tok)
    model.eval()
    return model, peers_like(model.config, len(tok) + 1, sum(p.numel() for p in model.parameters()))


def peers_like(config, vocab_size: int, params: int) -> dict:
    """GPT-2 and BART sized to ``params``, in eval mode, by report name."""
    return {label: peer_like(kind, config, vocab_size, params).eval() for kind, label in PEERS.items()}


def best_time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def pipeline_and_peers(model_path: Path):
    """The saved pipeline and same-size peers (random weights) over its tokenizer plus a free id, by report name."""
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(model_path)
    return pipe, peers_like(pipe.model.config, len(pipe.tokenizer) + 1, sum(p.numel() for p in pipe.model.parameters()))


def text_prompts(tokenizer, cfg, count: int, task: str) -> list[str]:
    """Held-out prompts of ``task`` (its bundled test split) that fit the model ``cfg``, repeated to ``count``."""
    from tasks import task_files, test_pairs

    rows = test_pairs(task_files(task, ROOT / "runs")[0]["test"], tokenizer, cfg.max_prompt_length,
                      cfg.max_response_length, count)
    if not rows:
        raise SystemExit(f"no {task} test pair fits this model's slots ({cfg.max_prompt_length} + "
                         f"{cfg.max_response_length}); "
                         "pass the --task the model was trained on.")
    return [rows[i % len(rows)]["prompt"] for i in range(count)]


def peer_generate(tokenizer, ar, prompts: list[str], n_out: int) -> list[str]:
    """Tokenise (left-padded for GPT-2, right-padded into BART's encoder), decode exactly ``n_out`` tokens greedily
    with the KV cache, detokenise."""
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    sep, width = len(tokenizer), max(map(len, ids)) + 1
    if ar.config.is_encoder_decoder:
        batch, mask, _ = seq2seq_batch(ids, [[]] * len(ids), sep, 0)
        out = ar.generate(input_ids=batch, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=n_out,
                          min_new_tokens=n_out, pad_token_id=0, decoder_start_token_id=sep)
        return tokenizer.batch_decode(out[:, 1:].clamp(max=sep - 1), skip_special_tokens=True)
    batch = torch.zeros((len(ids), width), dtype=torch.long)
    mask = torch.zeros_like(batch)
    for row, tokens in enumerate(ids):
        batch[row, width - len(tokens) - 1 :] = torch.tensor(tokens + [sep])
        mask[row, width - len(tokens) - 1 :] = 1
    out = ar.generate(input_ids=batch, attention_mask=mask, do_sample=False, max_new_tokens=n_out, min_new_tokens=n_out,
                      pad_token_id=0)
    return tokenizer.batch_decode(out[:, width:].clamp(max=sep - 1), skip_special_tokens=True)


def peak_memory(model_path: Path, which: str, batch: int, steps: int, task: str) -> dict:
    """Peak resident memory (MB) of a fresh process that loads the models and generates one batch with ``which``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--model", str(model_path), "--memory-child", which,
           "--batches", str(batch), "--steps", str(steps), "--task", task]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe for {which} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def high_water_mb() -> float:
    """This process's peak resident memory in MB (VmHWM: unlike ru_maxrss, not inherited from the parent across
    exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


BUFFERS = ("embedding_table",)  # saved with the weights, not parameters (pipeline_and_peers counts parameters())


def memory_child(args) -> None:
    """Load only the model named by ``--memory-child`` (a peer: built to our parameter count from the saved config
    and weights' shapes), generate one batch, print the peak resident memory before and after, as JSON."""
    from diffusion_lm.text import DiffusionLMConfig
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    if args.memory_child == "ours":
        pipe = DiffusionLMPipeline.from_pretrained(args.model)
        prompts = text_prompts(pipe.tokenizer, pipe.model.config, args.batches[0], args.task)
        before = high_water_mb()
        pipe(prompts, num_steps=args.steps[0], batch_size=len(prompts))
    else:
        from safetensors import safe_open
        from transformers import AutoTokenizer

        cfg = DiffusionLMConfig.from_pretrained(args.model)
        with safe_open(str(args.model / "model.safetensors"), framework="pt") as f:
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if k not in BUFFERS)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        ar = peer_like(args.memory_child, cfg, len(tokenizer) + 1, params).eval()
        prompts = text_prompts(tokenizer, cfg, args.batches[0], args.task)
        before = high_water_mb()
        peer_generate(tokenizer, ar, prompts, cfg.max_response_length)
    print(json.dumps({"loaded_mb": before, "peak_mb": high_water_mb()}))


def end_to_end(args) -> None:
    if args.memory_child:
        return memory_child(args)
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe, peers = pipeline_and_peers(args.model)
    others = {path: DiffusionLMPipeline.from_pretrained(path) for path in args.also}
    n_out = pipe.model.config.max_response_length
    print(f"model {args.model}: generation config {pipe.generation_config.to_dict()}")
    print("| batch | model | output tokens/s | ratio to GPT-2 |")
    print("|---|---|---|---|")
    for batch in args.batches:
        prompts = text_prompts(pipe.tokenizer, pipe.model.config, batch, args.task)
        rates = {label: batch * n_out / best_time(lambda ar=ar: peer_generate(pipe.tokenizer, ar, prompts, n_out),
                                                  args.repeats)
                 for label, ar in peers.items()}
        ar_rate = rates["GPT-2"]
        for label, rate in rates.items():
            print(f"| {batch} | {label} greedy, KV cache | {rate:.0f} | {rate / ar_rate:.2f} |", flush=True)
        rate = batch * n_out / best_time(lambda: pipe(prompts, batch_size=batch), args.repeats)
        print(f"| {batch} | ours, the default call | {rate:.0f} | {rate / ar_rate:.2f} |", flush=True)
        for path, other in others.items():
            rate = batch * n_out / best_time(lambda other=other: other(prompts, batch_size=batch), args.repeats)
            print(f"| {batch} | {path}, its default call | {rate:.0f} | {rate / ar_rate:.2f} |", flush=True)
        for steps in args.steps:
            rate = batch * n_out / best_time(lambda: pipe(prompts, num_steps=steps, batch_size=batch), args.repeats)
            print(f"| {batch} | ours, {pipe.generation_config.method} {steps} steps | {rate:.0f} | "
                  f"{rate / ar_rate:.2f} |",
                  flush=True)
    batch, steps = max(args.batches), min(args.steps)
    for which in ("ours", *PEERS):
        mem = peak_memory(args.model, which, batch, steps, args.task)
        print(f"peak memory, {which} generating batch {batch}" + (f" at {steps} steps" if which == "ours" else "")
              + f": peak {mem['peak_mb']:.0f} MB, {mem['peak_mb'] - mem['loaded_mb']:.0f} MB over the loaded process "
              f"({mem['loaded_mb']:.0f} MB)", flush=True)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["sort", "demo"])
    parser.add_argument("--model", type=Path, default=None, help="a saved model: end to end through the pipeline")
    parser.add_argument("--also", type=Path, nargs="*", default=[],
                        help="with --model: saved models of the same slots whose default calls are timed in the same "
                             "run (a distilled model's teacher)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--task", default="bible", help="with --model: the task whose test prompts are used")
    parser.add_argument("--memory-child", choices=["ours", *PEERS], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model is not None:
        return end_to_end(args)
    from diffusion_lm.text.batching import PairBatch
    from diffusion_lm.text.generation import generate_ids
    from diffusion_lm.text.generation_config import GenerationConfig

    print("| config | batch | model | output tokens/s | ratio to GPT-2 |")
    print("|---|---|---|---|---|")
    for name in args.configs:
        model, peers = build(name)
        m = model.config
        n_out = m.max_response_length
        for batch in args.batches:
            gen = torch.Generator().manual_seed(0)
            prompt = torch.randint(2, m.vocab_size, (batch, m.max_prompt_length), generator=gen)
            mask = torch.ones_like(prompt, dtype=torch.bool)
            ar_ids = torch.randint(2, m.vocab_size, (batch, m.max_prompt_length), generator=gen)
            rates = {label: batch * n_out / best_time(lambda ar=ar: ar.generate(
                input_ids=ar_ids, attention_mask=torch.ones_like(ar_ids), do_sample=False, num_beams=1,
                max_new_tokens=n_out, min_new_tokens=n_out, pad_token_id=0), args.repeats)
                for label, ar in peers.items()}
            ar_rate = rates["GPT-2"]
            for label, rate in rates.items():
                print(f"| {name} | {batch} | {label} greedy, KV cache | {rate:.0f} | {rate / ar_rate:.2f} |",
                      flush=True)
            for steps in args.steps:
                settings = GenerationConfig(num_steps=steps, method="dpm_solver++")
                seconds = best_time(lambda: generate_ids(model, PairBatch(prompt, mask), settings,
                                                         generator=torch.Generator().manual_seed(0)), args.repeats)
                rate = batch * n_out / seconds
                print(f"| {name} | {batch} | ours, dpm_solver++ {steps} steps | {rate:.0f} | {rate / ar_rate:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
