"""Distil a text model's rollout into a few steps (D1, D2 in THEORY): a student that samples in K steps.

    python -m training.distill --teacher runs/demo/model --data data/generated/bible/train.jsonl \\
        --out runs/demo/distilled [--prompts 8192 --steps 1500]
    python -m training.distill ... --student-steps 2 --teacher-steps 20      # a K-step student (D1)

By default (D2) the student takes one step and one length candidate, and learns the teacher's own call: the
teacher answers ``--prompts`` prompts of ``--data`` (JSON lines with a prompt field; responses are not needed: the
teacher writes them) exactly as its generation_config.json says (sampler, steps, length candidates, temperature,
repeats), from fixed starting noise, and the student learns to say in one evaluation what that call chose,
its length included. With ``--teacher-steps T`` the teacher instead runs T steps on the student's K-step grid
refined (D1), one length candidate, and the student learns its state at each of its K times.
The teacher's answers are kept in ``OUT/teacher_trajectories.safetensors``, so a second run with the same
settings starts training at once. The student starts as a copy of the teacher. The result, ``OUT/model``, is a
normal checkpoint whose generation config samples in K steps with one length candidate:
``DiffusionLMPipeline.from_pretrained("OUT/model")(prompts)`` or ``push_to_hub`` like any other.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from diffusion_lm.text.tokenization import tokenizer_fingerprint

from .jsonl import read_fields, report
from .threads import require_positive, run_command


def read_prompts(path: Path, field: str, limit: int, skip: int = 0) -> list[str]:
    """Up to ``limit`` prompts of a JSON-lines file after its first ``skip`` rows, with errors that name the file,
    line and field."""
    prompts = [row[0] for row in read_fields(path, (field,), "--prompt_field", limit + skip)][skip:]
    if not prompts:
        raise ValueError(f"{path}: no prompts" + (f" after the first {skip} rows (--skip)." if skip else "."))
    return prompts


def trajectory_key(pipe, prompts: list[str], settings, args) -> str:
    """What the stored trajectories depend on: the teacher's weights and tokenizer, the prompts, the settings."""
    digest = hashlib.sha256()
    for name, tensor in sorted(pipe.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digest.update(tokenizer_fingerprint(pipe.tokenizer).encode())
    digest.update("\n".join(prompts).encode())
    return json.dumps({"teacher": digest.hexdigest(), "student": args.student_steps,
                       "teacher_steps": args.teacher_steps, "seed": args.seed, "batch_size": args.batch_size,
                       "settings": settings.to_dict()}, sort_keys=True)


def _stored(cache: Path, key: str):
    """The trajectories in ``cache`` if it holds them for ``key`` (anything unreadable counts as absent)."""
    from safetensors import safe_open

    from diffusion_lm.text.distillation import Trajectories

    try:
        with safe_open(str(cache), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return Trajectories(*(f.get_tensor(n) for n in FIELDS))
    except Exception:  # a missing, damaged or foreign file: collect again
        return None


FIELDS = ("prompt_ids", "prompt_mask", "states", "times", "target_ids")


def collect(pipe, prompts: list[str], settings, args, cache: Path):
    """The teacher's trajectories for ``prompts`` (read from ``cache`` when it holds these exact ones)."""
    from safetensors.torch import save_file

    from diffusion_lm.text.batching import PairBatch, encode_prompts
    from diffusion_lm.text.distillation import Trajectories, teacher_trajectories

    key = trajectory_key(pipe, prompts, settings, args)
    stored = _stored(cache, key)
    if stored is not None:
        print(f"teacher trajectories: reusing {cache}", file=sys.stderr)
        return stored
    generator = torch.Generator().manual_seed(args.seed)
    parts = []
    cfg = pipe.model.config
    what = f"{args.teacher_steps} steps" if args.teacher_steps else "its own call"
    for start in tqdm(range(0, len(prompts), args.batch_size), desc=f"teacher, {what}"):
        batch = encode_prompts(pipe.tokenizer, prompts[start : start + args.batch_size], cfg.max_prompt_length, True)
        parts.append(teacher_trajectories(pipe.model, PairBatch(batch.prompt_ids, batch.prompt_mask.bool()), settings,
                                          args.student_steps, args.teacher_steps, generator,
                                          repeat_block=pipe.repeat_block))
    width = cfg.max_prompt_length  # batches are padded to their own longest prompt: bring them to one width
    widen = lambda t, value: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
    data = Trajectories(torch.cat([widen(p.prompt_ids, cfg.pad_token_id) for p in parts]),
                        torch.cat([widen(p.prompt_mask, False) for p in parts]),
                        torch.cat([p.states for p in parts], dim=1), parts[0].times,
                        torch.cat([p.target_ids for p in parts]))
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(cache.name + ".partial")
    save_file({n: getattr(data, n).contiguous() for n in FIELDS}, str(partial), metadata={"key": key})
    partial.replace(cache)
    return data


@torch.no_grad()
def same_text_as_teacher(pipe, student, prompts: list[str], settings, args) -> dict[str, float]:
    """The share of held-out prompts on which the student, from the teacher's starting noise, writes the teacher's
    tokens (the teacher on the refined grid it was distilled on), at 1 step and at the student's K."""
    from diffusion_lm.text.batching import PairBatch, encode_prompts
    from diffusion_lm.text.distillation import teacher_trajectories
    from diffusion_lm.text.generation import Controls, generate_ids

    cfg = pipe.model.config
    batch = encode_prompts(pipe.tokenizer, prompts, cfg.max_prompt_length, True)
    mask = batch.prompt_mask.bool()
    traj = teacher_trajectories(pipe.model, PairBatch(batch.prompt_ids, mask), settings, args.student_steps,
                                args.teacher_steps, torch.Generator().manual_seed(args.seed + 2),
                                repeat_block=pipe.repeat_block)
    shares = {}
    for steps in sorted({1, args.student_steps}):
        ids = generate_ids(student, PairBatch(batch.prompt_ids, mask),
                           settings.updated(num_steps=steps, guidance_scale=1.0, length_candidates=1),
                           Controls(repeat_block=pipe.repeat_block), noise=traj.states[0],
                           generator=torch.Generator().manual_seed(args.seed + 3))
        shares[str(steps)] = float((ids == traj.target_ids).all(-1).float().mean())
    return shares


def distill(args: argparse.Namespace) -> dict:
    from diffusion_lm.text.distillation import Trajectories, check_distillable, distillation_loss
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.teacher)
    teacher = pipe.model.eval()
    settings = pipe.generation_config  # (D2) the teacher's own call, its length beam included
    if args.teacher_steps is None and args.student_steps != 1:
        raise ValueError(f"--student-steps {args.student_steps} needs --teacher-steps (a multiple of it): only a "
                         "one-step student learns the teacher's own call.")
    if args.teacher_steps is not None:  # (D1) one rollout per prompt on the refined grid: the one the student learns
        settings = settings.updated(length_candidates=1)
        if args.teacher_steps % args.student_steps:
            raise ValueError(f"--teacher-steps ({args.teacher_steps}) must be a multiple of "
                             f"--student-steps ({args.student_steps}).")
    check_distillable(settings, args.student_steps, args.teacher_steps)
    prompts = read_prompts(args.data, args.prompt_field, args.prompts + args.held_out, args.skip)
    if len(prompts) <= args.held_out:
        raise ValueError(f"{args.data} has {len(prompts)} prompts; "
                         f"distillation needs more than --held-out ({args.held_out}).")
    held, train_prompts = prompts[: args.held_out], prompts[args.held_out :]
    data = collect(pipe, train_prompts, settings, args, args.out / "teacher_trajectories.safetensors")

    if args.student_init is not None:  # continue an earlier distillation
        from diffusion_lm.text import DiffusionLMModel
        from diffusion_lm.text.loading import load_model

        student = load_model(DiffusionLMModel, args.student_init).train()
        fields = lambda cfg: {k: v for k, v in cfg.to_dict().items()
                              if not k.startswith("_") and k != "transformers_version"}
        if fields(student.config) != fields(teacher.config):
            raise ValueError(f"--student-init {args.student_init} is not a model of the teacher's configuration.")
    else:
        student = copy.deepcopy(teacher).train()
    for p in student.parameters():
        p.requires_grad_(p is not student.embedding_table)
    trainable = [p for p in student.parameters() if p.requires_grad]
    groups = student.clipping_groups()
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(args.seed + 1)
    bar = tqdm(range(args.steps), desc=f"distil to {args.student_steps} steps")
    losses = []
    for _ in bar:
        idx = torch.randint(0, data.target_ids.shape[0], (args.batch_size,), generator=generator)
        batch = Trajectories(data.prompt_ids[idx], data.prompt_mask[idx], data.states[:, idx], data.times,
                             data.target_ids[idx])
        loss = distillation_loss(student, batch, settings, pipe.repeat_block)  # (D1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in groups:  # the length classifier's gradients apart from the denoiser's, as in training
            torch.nn.utils.clip_grad_norm_(group, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    student.eval()
    # the student has absorbed the teacher's guidance (if any) and samples in K steps
    student_pipe = DiffusionLMPipeline(student, pipe.tokenizer, settings.updated(
        num_steps=args.student_steps, guidance_scale=1.0, length_candidates=1))
    agreement = same_text_as_teacher(pipe, student, held, settings, args) if held else {}
    result = {"teacher": str(args.teacher), "student_init": args.student_init, "teacher_steps": args.teacher_steps,
              "student_steps": args.student_steps,
              "prompts": len(train_prompts), "steps": args.steps, "lr": args.lr,
              "final_loss": sum(losses[-50:]) / len(losses[-50:]),
              "held_out_same_text_as_teacher": agreement}
    student_pipe.save_pretrained(args.out / "model", training={"distilled_from": str(args.teacher), **{
        k: result[k] for k in ("teacher_steps", "student_steps", "prompts", "steps")}})
    return report(args.out / "distillation.json", result)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="the model to distil (folder or Hub id)")
    p.add_argument("--data", type=Path, required=True, help="JSON lines with a prompt field")
    p.add_argument("--prompt_field", default="prompt")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--student-steps", type=int, default=1)
    p.add_argument("--student-init", default=None,
                   help="start from this student (an earlier OUT/model) instead of the teacher")
    p.add_argument("--teacher-steps", type=int, default=None,
                   help="T steps on the student's grid refined, one length candidate (D1); default: the teacher's "
                        "own call, for a one-step student (D2)")
    p.add_argument("--prompts", type=int, default=8192,
                   help="training prompts the teacher answers (more make a better student: docs/benchmarks.md)")
    p.add_argument("--held-out", type=int, default=64, help="prompts kept back to compare student and teacher")
    p.add_argument("--skip", type=int, default=0,
                   help="start after this many rows of --data: a later round (--student-init) on prompts "
                        "the student has not seen")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = require_positive(p, p.parse_args(argv), "student_steps", "prompts", "steps", "batch_size")
    if args.teacher_steps is not None and args.teacher_steps < 1:
        p.error("--teacher-steps must be >= 1")
    for name in ("held_out", "skip"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def main(argv=None) -> int:
    return run_command(distill, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
