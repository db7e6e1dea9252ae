"""The prompt/response tasks the text benchmarks train on: their data files and the config that defines each.

- ``bible``: KJV -> WEB verse modernisation (configs/demo.yaml, the README demo), BLEU/chrF.
- ``g2p``: spelling -> pronunciation from the CMU Pronouncing Dictionary (configs/g2p.yaml), exact match and
  phoneme error rate.
- ``inflect``: a lemma spelled out and a Penn tag -> the inflected form spelled out, from lemminflect's lexicon
  (configs/inflect.yaml), exact match and character error rate.
- ``simplify``: longer KJV verses -> the Bible in Basic English, 4000 training pairs (configs/demo.yaml), BLEU/chrF.
- ``sort``: sort 4-12 words over a 50-word vocabulary (synthetic; command-line overrides), exact match.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("bible", "g2p", "inflect", "simplify", "sort")
WRITTEN = ("g2p", "inflect", "sort")  # short deterministic responses: scored by exact match and an error rate
CONFIGS = {"bible": "demo.yaml", "g2p": "g2p.yaml", "inflect": "inflect.yaml", "simplify": "demo.yaml"}
ERROR_RATES = {"g2p": ("token_error_rate", "PER"), "inflect": ("char_error_rate", "CER"),
               "sort": ("token_error_rate", "WER"), "bible": ("char_error_rate", "CER"),
               "simplify": ("char_error_rate", "CER")}

SORT_OVERRIDES = ["--model.embedding_dim", "16", "--model.hidden_size", "64", "--model.num_layers", "4",
                  "--model.num_heads", "4", "--model.mlp_ratio", "2.0", "--model.max_prompt_length", "16",
                  "--model.max_response_length", "16", "--model.self_conditioning", "true",
                  "--tokenizer.train", "{kind: wordlevel, vocab_size: 64}",
                  "--optim.lr", "2.0e-3", "--optim.max_steps", "3000", "--optim.batch_size", "64",
                  "--optim.warmup_steps", "150", "--optim.ema_decay", "0.999", "--eval.every", "1000",
                  "--checkpoint.every", "1000"]


def task_files(task: str, out: Path) -> tuple[dict[str, Path], Path | None, list[str]]:
    """Data files (train/validation/test), the config file and the overrides that define ``task``'s model and
    training."""
    from diffusion_lm.training.build_data import ensure, write_jsonl

    if task in CONFIGS:
        return ensure(task), ROOT / "configs" / CONFIGS[task], []
    if task != "sort":
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}.")
    from diffusion_lm.text.synthetic import synthetic_pairs

    folder = out / "data"
    paths = {}
    for split, n, seed in (("train", 100_000, 1), ("validation", 300, 2), ("test", 300, 3)):
        paths[split] = folder / f"{split}.jsonl"
        if not paths[split].exists():
            write_jsonl([{"prompt": p, "response": r} for p, r in synthetic_pairs(n, "sort", 50, 4, 12, seed)],
                        paths[split])
    return paths, None, list(SORT_OVERRIDES)


def command_line_overrides(items: list[str]) -> list[str]:
    """``key=value`` config overrides (a bench's ``--set``) as the training command line's ``--key value``."""
    out = []
    for item in items:
        key, _, value = item.partition("=")
        out += [f"--{key}", value]
    return out


def metrics(task: str) -> tuple[str, str]:
    """The headline metric of ``task`` and its error-rate key (``training.evaluation.text_metrics``)."""
    return ("exact_match" if task in WRITTEN else "bleu"), ERROR_RATES[task][0]


def test_pairs(path: Path, tokenizer, max_prompt: int, max_response: int, limit: int) -> list[dict]:
    """The first ``limit`` rows of a JSONL file whose prompt and response fit the model's slots."""
    from diffusion_lm.training.demo import test_pairs as fitting_rows

    return fitting_rows(path, tokenizer, max_prompt, max_response, limit)
