"""The prompt/response tasks the text benchmarks train on: their data files and the config that defines each.

- ``bible``: KJV -> WEB verse modernisation (configs/demo.yaml, the README demo), BLEU/chrF.
- ``g2p``: spelling -> pronunciation from the CMU Pronouncing Dictionary (configs/g2p.yaml), exact match.
- ``simplify``: longer KJV verses -> the Bible in Basic English, 4000 training pairs (configs/demo.yaml), BLEU/chrF.
- ``sort``: sort 4-12 words over a 50-word vocabulary (synthetic; command-line overrides), exact match.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("bible", "g2p", "simplify", "sort")

SORT_OVERRIDES = ["--model.embedding_dim", "16", "--model.hidden_size", "64", "--model.num_layers", "4", "--model.num_heads", "4",
                  "--model.mlp_ratio", "2.0", "--model.max_prompt_length", "16", "--model.max_response_length", "16",
                  "--model.self_conditioning", "true", "--tokenizer.train", "{kind: wordlevel, vocab_size: 64}",
                  "--optim.lr", "2.0e-3", "--optim.max_steps", "3000", "--optim.batch_size", "64", "--optim.warmup_steps", "150",
                  "--optim.ema_decay", "0.999", "--eval.every", "1000", "--checkpoint.every", "1000"]


def task_files(task: str, out: Path) -> tuple[dict[str, Path], Path | None, list[str]]:
    """Data files (train/validation/test), the config file and the overrides that define ``task``'s model and training."""
    from diffusion_lm.training.build_data import ensure, write_jsonl

    if task in ("bible", "g2p", "simplify"):
        paths = ensure(task)
        config = ROOT / "configs" / ("g2p.yaml" if task == "g2p" else "demo.yaml")
        return paths, config, []
    if task != "sort":
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}.")
    from diffusion_lm.text.synthetic import synthetic_pairs

    folder = out / "data"
    paths = {}
    for split, n, seed in (("train", 100_000, 1), ("validation", 300, 2), ("test", 300, 3)):
        paths[split] = folder / f"{split}.jsonl"
        if not paths[split].exists():
            write_jsonl([{"prompt": p, "response": r} for p, r in synthetic_pairs(n, "sort", 50, 4, 12, seed)], paths[split])
    return paths, None, list(SORT_OVERRIDES)


def test_pairs(path: Path, tokenizer, max_prompt: int, max_response: int, limit: int) -> list[dict]:
    """The first ``limit`` rows of a JSONL file whose prompt and response fit the model's slots."""
    from diffusion_lm.training.demo import test_pairs as fitting_rows

    return fitting_rows(path, tokenizer, max_prompt, max_response, limit)
