"""(B1) No word twice in a row: adjacent repeats barred in the rounding logits, and what the bar reads of a
tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class RepeatBlock:
    """What ``block_adjacent_repeats`` reads of a tokenizer: ``punctuation`` (V,) bool, the pauses (``,;:`` and
    dashes) it looks past, and ``same_word`` (V,) long, tokens grouped by text up to case, which count as one word."""

    punctuation: Tensor | None = None
    same_word: Tensor | None = None

    @classmethod
    def of(cls, tokenizer: Any) -> "RepeatBlock":
        from .tokenization import punctuation_mask, same_word_classes

        return cls(punctuation_mask(tokenizer), same_word_classes(tokenizer))


def block_adjacent_repeats(logits: Tensor, pad_token_id: int, punctuation: Tensor | None = None,
                           same_word: Tensor | None = None, inplace: bool = False) -> Tensor:
    """Logits (B, N, V) in which no slot's most likely token is its left neighbour's (pad may repeat).

    Scanning left to right, where slot j would round to the token slot j - 1 rounds to, that token is
    barred at j, so j falls to its next choice. A model unsure whether a word belongs at slot j - 1 or j
    puts it at both ("and and"); barring the second copy lets the next word take that slot (the
    non-autoregressive decoders' de-duplication, applied inside the rollout rather than to the final text).

    ``punctuation`` (V,) True at the tokens the scan looks past (``RepeatBlock.of(tokenizer)`` gives a tokenizer's
    commas, semicolons, colons and dashes): a word may then not repeat the last word before them either
    ("that, that"). ``same_word`` (V,) maps each token to a class of tokens that count as one word (the pipeline:
    the same token text up to case, so "He he" is a repeat). Where a slot clashes, every token of its neighbour's
    class and of that last word's class is barred, so its next choice is none of them. A slot whose only finite
    choice would be barred (a given slot of an infilling template) keeps it. ``inplace`` edits ``logits`` itself
    (the sampler's own fresh logits) instead of a copy.
    """
    if not inplace:
        logits = logits.clone()
    vocab = logits.shape[-1]
    word_of = same_word.to(logits.device) if same_word is not None else torch.arange(vocab, device=logits.device)
    if punctuation is not None:
        punctuation = punctuation.to(logits.device, torch.bool)
    top = logits.argmax(-1)  # (B, N) each slot's first choice: it changes only where a slot is barred
    previous = top[:, 0]
    word = previous.clone()
    for j in range(1, logits.shape[1]):
        current = top[:, j]
        clash = word_of[current] == word_of[previous]
        if punctuation is not None:
            clash |= (word_of[current] == word_of[word]) & ~punctuation[current]
        clash &= current != pad_token_id
        rows = clash.nonzero().squeeze(-1)
        if len(rows):
            bar = (word_of[None] == word_of[previous[rows]][:, None]) & (previous[rows] != pad_token_id)[:, None]
            if punctuation is not None:
                bar |= (word_of[None] == word_of[word[rows]][:, None]) & (word[rows] != pad_token_id)[:, None]
            bar[torch.arange(len(rows)), current[rows]] = True
            barred = logits[rows, j].masked_fill(bar, float("-inf"))
            open_rows = torch.isfinite(barred).any(-1)  # a slot with nothing left keeps its token
            logits[rows[open_rows], j] = barred[open_rows]
            top[rows, j] = logits[rows, j].argmax(-1)
        previous = top[:, j]
        if punctuation is not None:
            word = torch.where(punctuation[previous], word, previous)
    return logits
