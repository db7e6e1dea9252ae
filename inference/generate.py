"""Generate responses with a saved diffusion-lm model.

    python -m inference.generate --model PATH --prompt "your prompt"
    python -m inference.generate --model PATH --input prompts.jsonl --output responses.jsonl

Input rows are JSON objects with a ``prompt`` field (``--prompt-field`` to change it); output rows
keep every input field and add ``response`` (and ``samples`` with ``--num-samples N --return-all``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffusion_lm.common.atomic import write_jsonl_atomic
from diffusion_lm.core.sampling import METHODS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="folder written by save_pretrained, or a Hub repo id")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", action="append", help="a prompt (repeat for several)")
    source.add_argument("--input", type=Path, help="JSONL file of prompts")
    p.add_argument("--output", type=Path, help="JSONL file to write (default: print responses)")
    p.add_argument("--prompt-field", default="prompt")
    p.add_argument("--num-steps", type=int, default=None, help="sampler steps (default: the model's generation_config.json)")
    p.add_argument("--method", choices=METHODS, default=None, help="sampler (default: the model's generation config)")
    p.add_argument("--eta", type=float, default=None, help="DDIM noise in [0, 1] (default: the generation config's)")
    p.add_argument("--log-snr-offset", type=float, default=None, help="condition-enhanced denoising offset (C1)")
    p.add_argument("--temperature", type=float, default=None, help="sharpen x0 estimates (< 1)")
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--mbr", action="store_true", help="pick the minimum-Bayes-risk sample")
    p.add_argument("--return-all", action="store_true", help="also write every sample")
    p.add_argument("--block-adjacent-repeats", action=argparse.BooleanOptionalAction, default=None,
                   help="no token twice in a row (text; default: the model's generation config)")
    p.add_argument("--clamp", action=argparse.BooleanOptionalAction, default=None,
                   help="clamp x0 predictions to embedding rows (default: the model's generation config)")
    p.add_argument("--length-candidates", type=int, default=None,
                   help="response lengths to try per prompt (length-conditioned models; default: the generation config's)")
    p.add_argument("--length", type=int, default=None, help="write exactly this many tokens (length-conditioned models)")
    p.add_argument("--truncation", action="store_true", help="cut over-long prompts instead of failing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    return p.parse_args(argv)


def read_rows(path: Path, field: str) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"--input {path}: no such file" + (" (it is a folder)" if path.is_dir() else "") + "; give a JSONL file of prompts.")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}); "
                                 f"each line must be one JSON object such as {{\"{field}\": \"...\"}}.") from err
            if not isinstance(row, dict) or field not in row:
                raise ValueError(f"{path}:{number}: each line must be a JSON object with a {field!r} field.")
            rows.append(row)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from diffusion_lm.pipeline import DiffusionLMPipeline

    try:
        rows = read_rows(args.input, args.prompt_field) if args.input else [{args.prompt_field: p} for p in args.prompt]
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipe = DiffusionLMPipeline.from_pretrained(args.model, device=device)
        prompts = [row[args.prompt_field] for row in rows]
        common = dict(num_steps=args.num_steps, method=args.method, eta=args.eta, guidance_scale=args.guidance_scale,
                      log_snr_offset=args.log_snr_offset, temperature=args.temperature,
                      num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size,
                      truncation=args.truncation, clamp=args.clamp, block_adjacent_repeats=args.block_adjacent_repeats,
                      length_candidates=args.length_candidates, length=args.length,
                      progress=len(prompts) > args.batch_size)
        samples = pipe(prompts, return_all=True, **common)
        from diffusion_lm.mbr import mbr_select

        for row, group in zip(rows, samples):
            row["response"] = group[mbr_select(group)] if args.mbr else group[0]
            if args.return_all:
                row["samples"] = group
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.output:
        write_jsonl_atomic(args.output, rows)
    else:
        for row in rows:
            print(row["response"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
