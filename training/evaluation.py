"""Periodic evaluation: validation losses and generation metrics (BLEU, chrF through sacrebleu; exact match)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import collate
from .length_fit import length_accuracy


@torch.no_grad()
def validation_loss(model, rows, pad_id: int, batches: int, batch_size: int, device, seed: int = 0) -> dict[str, float]:
    """Mean losses over the first ``batches`` batches of the validation set, with a fixed random source
    (so the number does not depend on when it is computed, and the training RNG is not touched)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    totals = {"loss": 0.0, "loss_x0": 0.0, "loss_round": 0.0}
    seen = 0
    n = min(len(rows), batches * batch_size)
    for start in range(0, n, batch_size):
        batch = collate(rows[start : min(n, start + batch_size)], pad_id, model.config.max_response_length).to(device)
        out = model(**batch.as_kwargs(), generator=gen)
        size = batch.prompt_ids.shape[0]
        scores = {k: float(getattr(out, k)) for k in ("loss", "loss_x0", "loss_round")}
        if out.loss_length is not None:  # a length-conditioned model's length classifier (L2)
            scores["loss_length"] = float(out.loss_length)
            scores["length_accuracy"] = length_accuracy(model, [batch])
        for k, v in scores.items():
            totals[k] = totals.get(k, 0.0) + v * size
        seen += size
    model.train(was_training)
    return {f"val_{k}": v / max(seen, 1) for k, v in totals.items()}


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that turn ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rate(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """Corpus error rate in percent: total edit distance over the total reference length."""
    edits = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    return 100.0 * edits / max(sum(len(r) for r in references), 1)


def text_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults), the exact-match rate and two error rates, in percent.

    ``token_error_rate`` is over space-separated tokens (g2p's phoneme error rate); ``char_error_rate`` over the
    characters with whitespace left out (for a word spelled letter by letter, the word's character error rate).
    """
    import sacrebleu

    hyps, refs = list(hypotheses), list(references)
    return {
        "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
        "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
        "exact_match": 100.0 * sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / max(len(refs), 1),
        "token_error_rate": error_rate([h.split() for h in hyps], [r.split() for r in refs]),
        "char_error_rate": error_rate(["".join(h.split()) for h in hyps], ["".join(r.split()) for r in refs]),
    }


def generation_metrics(pipe, prompts: Sequence[str], references: Sequence[str], batch_size: int,
                       examples: int) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Generate for validation prompts with the pipeline's generation config and score against the references;
    a few rows are returned for the log."""
    outputs = pipe(list(prompts), batch_size=batch_size, seed=0)
    rows = [{"prompt": p, "generated": o, "reference": r} for p, o, r in zip(prompts[:examples], outputs, references)]
    return text_metrics(outputs, references), rows
