"""A distilled student (python -m training.distill) against its teacher, on the same test prompts and seed.

The teacher at its reference step count (20 by default) and at the student's step counts, the student at
1-4 steps; BLEU, chrF and exact match against the references; the student's text against the teacher's.

    python bench/distilled.py --task bible --teacher runs/bench_bible/ours/model --student runs/distill_bible_k1/model
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tasks import TASKS, task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=None, help="the sort task's data folder (bench/ablation.py's)")
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--teacher-steps", type=int, default=20)
    parser.add_argument("--student-steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed of every call")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="where bundled task data are built")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file to write (default: beside the student)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm.common.atomic import write_json_atomic
    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.evaluation import text_metrics

    teacher = DiffusionLMPipeline.from_pretrained(args.teacher)
    student = DiffusionLMPipeline.from_pretrained(args.student)
    cfg = teacher.model.config
    paths = {"test": args.data_dir / "test.jsonl"} if args.data_dir else task_files(args.task, args.runs)[0]
    rows = test_pairs(paths["test"], teacher.tokenizer, cfg.max_prompt_length, cfg.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]

    teacher(prompts[:2], num_steps=1)  # warm-up: one-time costs are not timed
    student(prompts[:2], num_steps=1)

    def run(pipe, steps):
        start = time.perf_counter()
        texts = pipe(prompts, num_steps=steps, batch_size=50, seed=args.seed)
        return texts, {**text_metrics(texts, refs), "seconds": time.perf_counter() - start}

    reference, metrics = run(teacher, args.teacher_steps)
    table = [{"model": "teacher", "steps": args.teacher_steps, **metrics, "examples": reference[:3]}]
    print(table[-1], flush=True)
    for steps in args.student_steps:
        for name, pipe in (("teacher", teacher), ("student", student)):
            texts, metrics = run(pipe, steps)
            same = sum(a == b for a, b in zip(texts, reference)) / len(texts)
            table.append({"model": name, "steps": steps, **metrics, "same_as_teacher_reference": same,
                          "examples": texts[:3]})
            print({k: v for k, v in table[-1].items() if k != "examples"}, flush=True)
    out = args.out or args.student.parent / "vs_teacher.json"
    write_json_atomic(out, {"task": args.task, "seed": args.seed, "teacher": str(args.teacher),
                            "student": str(args.student),
                            "test_prompts": len(rows), "table": table})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
