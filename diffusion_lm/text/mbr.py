"""Minimum-Bayes-risk selection among sampled responses (as DiffuSeq does)."""

from __future__ import annotations

from collections.abc import Sequence


def mbr_select(candidates: Sequence[str]) -> int:
    """Index of the candidate with the highest mean sentence-BLEU against all the others.

    BLEU is sacrebleu's (with exponential smoothing, so short sentences still score); ties go to the
    earliest candidate.
    """
    if len(candidates) == 0:
        raise ValueError("mbr_select needs at least one candidate.")
    if len(candidates) == 1:
        return 0
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    scores = []
    for i, hyp in enumerate(candidates):
        others = [c for j, c in enumerate(candidates) if j != i]
        scores.append(sum(bleu.sentence_score(hyp, [ref]).score for ref in others) / len(others))
    return max(range(len(candidates)), key=lambda i: (scores[i], -i))
