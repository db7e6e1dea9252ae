"""Where a one-candidate student (D2) parts from its teacher's call: the length it picks, or the words it writes.

From the same starting noise: the teacher's default call (its length beam), the student's default call, and the
student told the length the teacher's beam chose; how often the lengths and texts agree, and exact match of each.

    python bench/distilled_length.py --task g2p --teacher runs/lc_g2p/model --student runs/distill_g2p_big/model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tasks import TASKS, task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="where bundled task data are built")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm.text.batching import PairBatch, encode_prompts
    from diffusion_lm.text.generation import Controls, generate_ids
    from diffusion_lm.text.length import response_lengths
    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.evaluation import text_metrics

    teacher, student = (DiffusionLMPipeline.from_pretrained(p) for p in (args.teacher, args.student))
    cfg = teacher.model.config
    rows = test_pairs(task_files(args.task, args.runs)[0]["test"], teacher.tokenizer, cfg.max_prompt_length,
                      cfg.max_response_length, args.test_size)
    refs = [r["response"] for r in rows]
    encoded = encode_prompts(teacher.tokenizer, [r["prompt"] for r in rows], cfg.max_prompt_length, True)
    batch = PairBatch(encoded.prompt_ids, encoded.prompt_mask.bool())
    noise = torch.randn(len(rows), cfg.max_response_length, cfg.embedding_dim,
                        generator=torch.Generator().manual_seed(args.seed))

    def call(pipe, lengths=None):
        return generate_ids(pipe.model, batch, pipe.generation_config,
                            Controls(lengths=lengths, repeat_block=pipe.repeat_block), noise=noise,
                            generator=torch.Generator().manual_seed(args.seed + 1))

    def text(ids):
        return [teacher.tokenizer.decode([i for i in r.tolist() if i != cfg.pad_token_id],
                                         skip_special_tokens=True).strip() for r in ids]

    said = call(teacher)
    chosen = response_lengths(said, cfg.pad_token_id)
    own, told = call(student), call(student, chosen)
    share = lambda a: round(100 * float(a.float().mean()), 1)  # noqa: E731
    print(json.dumps({
        "student's top-1 length is the teacher call's %": share(
            student.model.length_logits(batch.prompt_ids, batch.prompt_mask).argmax(-1) == chosen),
        "teacher's top-1 length is its call's %": share(
            teacher.model.length_logits(batch.prompt_ids, batch.prompt_mask).argmax(-1) == chosen),
        "student writes the teacher's text %": share((own == said).all(-1)),
        "student told the call's length writes the teacher's text %": share((told == said).all(-1)),
        "exact match %": {"teacher": text_metrics(text(said), refs)["exact_match"],
                          "student": text_metrics(text(own), refs)["exact_match"],
                          "student told the call's length": text_metrics(text(told), refs)["exact_match"]},
    }, indent=1))


if __name__ == "__main__":
    main()
