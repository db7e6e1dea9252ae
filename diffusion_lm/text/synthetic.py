"""Synthetic prompt -> response tasks that only a working conditional model solves."""

from __future__ import annotations

import random

TASKS = ("reverse", "sort")


def synthetic_pairs(
    n: int, task: str = "reverse", vocab: int = 20, min_words: int = 3, max_words: int = 6, seed: int = 0
) -> list[tuple[str, str]]:
    """``n`` pairs of space-separated words ``w0 .. w{vocab-1}``: the response reverses (or sorts) the prompt."""
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; valid choices are: {', '.join(TASKS)}.")
    if not 1 <= min_words <= max_words or vocab < 2:
        raise ValueError("need 1 <= min_words <= max_words and vocab >= 2.")
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    pairs = []
    for _ in range(n):
        prompt = [rng.choice(words) for _ in range(rng.randint(min_words, max_words))]
        response = prompt[::-1] if task == "reverse" else sorted(prompt, key=lambda w: int(w[1:]))
        pairs.append((" ".join(prompt), " ".join(response)))
    return pairs
