"""Generate responses with a saved diffusion-lm model.

    python -m inference.generate --model PATH --prompt "your prompt"
    python -m inference.generate --model PATH --input prompts.jsonl --output responses.jsonl

Input rows are JSON objects with a ``prompt`` field (``--prompt-field`` to change it); output rows
keep every input field and add ``response`` (and ``samples`` with ``--num-samples N --return-all``); an input
``response`` (a test file's reference) is kept as ``reference``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diffusion_lm.common.atomic import write_jsonl_atomic


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """A ``--name`` flag for every ``GenerationConfig`` setting, typed as the field is, defaulting to the model's
    own."""
    import typing

    from diffusion_lm.text.generation_config import GenerationConfig, text_samplers

    hints, helps = typing.get_type_hints(GenerationConfig), GenerationConfig.describe()
    group = parser.add_argument_group("generation settings (default: the model's generation_config.json)")
    for name in GenerationConfig.names():
        flag, kind = "--" + name.replace("_", "-"), hints[name]
        options = set(typing.get_args(kind)) or {kind}
        extra: dict = {}
        if bool in options:
            extra["action"] = argparse.BooleanOptionalAction
        elif name == "method":
            extra.update(type=str, metavar="{" + ",".join(text_samplers()) + "}")
        else:
            extra["type"] = next(t for t in (int, float, str) if t in options)
        group.add_argument(flag, dest=name, default=None, help=helps.get(name, "").replace("%", "%%"), **extra)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="folder written by save_pretrained, or a Hub repo id")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", action="append", help="a prompt (repeat for several)")
    source.add_argument("--input", type=Path, help="JSONL file of prompts")
    p.add_argument("--output", type=Path, help="JSONL file to write (default: print responses)")
    p.add_argument("--prompt-field", default="prompt")
    p.add_argument("--return-all", action="store_true", help="also write every sample (with --num-samples N)")
    p.add_argument("--length", type=int, default=None,
                   help="write exactly this many tokens (length-conditioned models)")
    p.add_argument("--truncation", action="store_true", help="cut over-long prompts instead of failing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    add_setting_flags(p)
    return p.parse_args(argv)


def read_rows(path: Path, field: str) -> list[dict]:
    from diffusion_lm.common.jsonl import json_lines

    if not path.is_file():
        folder = " (it is a folder)" if path.is_dir() else ""
        raise ValueError(f"--input {path}: no such file{folder}; give a JSONL file of prompts.")
    rows = []
    for number, row in json_lines(path, f'{{"{field}": "..."}}'):
        if field not in row:
            raise ValueError(f"{path}:{number}: each line must be a JSON object with a {field!r} field.")
        rows.append(row)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    try:
        rows = read_rows(args.input, args.prompt_field) if args.input else [{args.prompt_field: p} for p in args.prompt]
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipe = DiffusionLMPipeline.from_pretrained(args.model, device=device)
        prompts = [row[args.prompt_field] for row in rows]
        from diffusion_lm.text.generation_config import GenerationConfig
        from diffusion_lm.text.mbr import mbr_select

        settings = {name: getattr(args, name) for name in GenerationConfig.names()}
        mbr = settings.pop("mbr")
        samples = pipe(prompts, return_all=True, seed=args.seed, batch_size=args.batch_size, truncation=args.truncation,
                       progress=len(prompts) > args.batch_size, length=args.length, **settings)
        if mbr is None:
            mbr = pipe.generation_config.mbr
        if args.prompt_field != "response":  # a test file's own responses are references: not overwritten
            kept = [row for row in rows if "response" in row and "reference" not in row]
            lost = sum("response" in row and "reference" in row for row in rows)
            if kept:
                print(f"note: {len(kept)} input rows had a 'response' field; it is kept as 'reference'",
                      file=sys.stderr)
            if lost:
                print(f"note: {lost} input rows had both 'response' and 'reference'; their 'response' is replaced",
                      file=sys.stderr)
            for row in kept:
                row["reference"] = row.pop("response")
        for row, group in zip(rows, samples):
            row["response"] = group[mbr_select(group)] if mbr else group[0]
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
