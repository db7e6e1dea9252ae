"""Where the time of one ``pipe(prompts)`` call goes: a table of the parts, for batch 64 and batch 1.

    python bench/profile_call.py --model runs/demo/model [--task bible] [--set num_steps=4 length_candidates=1 ...]

Each part is timed by wrapping the function that does it (wall time, one thread, best of ``--repeats`` calls):
tokenising and padding the prompts, the length classifier, the denoiser (the transformer), the rounding logits
(121), the interpolation (I1), the adjacent-repeat scan (B1), the length beam's scoring passes and decoding to
text; "rest" is the sampler arithmetic and everything unwrapped.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

from tasks import task_files, test_pairs

PARTS = ("tokenise", "length classifier", "denoiser", "rounding logits", "interpolation", "repeat scan",
         "length score", "decode")


@contextmanager
def timed_parts(pipe):
    """Wrap the functions that do each part; yields the dict of seconds per part."""
    import diffusion_lm.text.pipeline as pipeline_module
    import diffusion_lm.text.rollout as rollout_module

    seconds: dict[str, float] = defaultdict(float)
    depth = {"n": 0}

    def wrap(owner, name, part):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            if depth["n"]:  # inside another timed part: counted there
                return original(*args, **kwargs)
            depth["n"] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start
                depth["n"] -= 1

        setattr(owner, name, timed)
        return owner, name, original

    model = pipe.model
    patches = [wrap(pipeline_module, "encode_prompts", "tokenise"), wrap(pipe, "decode", "decode"),
               wrap(model, "length_logits", "length classifier"), wrap(model.denoiser, "forward", "denoiser"),
               wrap(model, "rounding_logits", "rounding logits"), wrap(model, "interpolate", "interpolation"),
               wrap(rollout_module, "block_adjacent_repeats", "repeat scan"),
               wrap(rollout_module.Rollout, "length_score", "length score")]
    try:
        yield seconds
    finally:
        for owner, name, original in reversed(patches):
            if owner is model or owner is pipe or owner is model.denoiser:
                delattr(owner, name) if name in vars(owner) else setattr(owner, name, original)
            else:
                setattr(owner, name, original)


def profile(pipe, prompts: list[str], batch: int, repeats: int, call: dict) -> dict:
    chunk = (prompts * (batch // len(prompts) + 1))[:batch]
    best = None
    for _ in range(repeats):
        with timed_parts(pipe) as parts:
            start = time.perf_counter()
            pipe(chunk, batch_size=batch, **call)
            total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, dict(parts))
    total, parts = best
    row = {"batch": batch, "total_s": round(total, 4), "samples_per_s": round(batch / total, 2)}
    row.update({p: round(parts.get(p, 0.0), 4) for p in PARTS})
    row["rest"] = round(total - sum(parts.values()), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task", default="bible", help="the task whose test prompts are used")
    parser.add_argument("--set", nargs="*", default=[], help="generation overrides, key=value (values as JSON)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusion_lm import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    call = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = pipe.model.config
    paths, _, _ = task_files(args.task, args.model.parent)
    prompts = [r["prompt"] for r in test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length,
                                               cfg.max_response_length, 64)]
    rows = [profile(pipe, prompts, b, args.repeats, call) for b in args.batches]
    print(f"settings: {pipe.generation_config.updated(**call).to_dict()}")
    head = ["batch", "total_s", "samples_per_s", *PARTS, "rest"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        share = {p: f"{r[p]:.3f} ({100 * r[p] / r['total_s']:.0f}%)" for p in (*PARTS, "rest")}
        print("| " + " | ".join(str(r[h]) if h not in share else share[h] for h in head) + " |")
    if args.out:
        args.out.write_text(json.dumps({"settings": call, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
