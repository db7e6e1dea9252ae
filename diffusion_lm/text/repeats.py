"""(B1) No word twice in a row: adjacent repeats barred in the rounding logits, and what the bar reads of a
tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# (B1) is on by default for a model whose training responses repeat a word this rarely (KJV -> WEB 0.09%, g2p 0.16%
# of responses); data that repeats tokens (inflect's spelled forms, 21%: "s t o p p e d") keeps it off.
REPEAT_SHARE_LIMIT = 0.01


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
                           same_word: Tensor | None = None, inplace: bool = False,
                           slot_rows: Tensor | None = None) -> Tensor:
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

    ``slot_rows`` (B, N) reads ``logits`` as packed rows (M, V) of the slots that are written: slot (b, j) is row
    ``slot_rows[b, j]``, or, where that is -1, a slot past the response's end that rounds to pad (L2). The scan is
    the same as on the (B, N, V) logits with those slots one-hot at pad.
    """
    if not inplace:
        logits = logits.clone()
    vocab = logits.shape[-1]
    word_of = same_word.to(logits.device) if same_word is not None else torch.arange(vocab, device=logits.device)
    if punctuation is not None:
        punctuation = punctuation.to(logits.device, torch.bool)
    if slot_rows is None:
        top = logits.argmax(-1)  # (B, N) each slot's first choice: it changes only where a slot is barred
    else:
        top = torch.full(slot_rows.shape, pad_token_id, dtype=torch.long, device=logits.device)
        top[slot_rows >= 0] = logits.argmax(-1)
    start = _first_clash(top, word_of, punctuation, pad_token_id)
    if start is None:  # no slot repeats its neighbour: nothing to bar
        return logits
    previous = top[:, start - 1]
    word = _last_words(top, punctuation)[:, start - 1]
    for j in range(start, top.shape[1]):
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
            column, at = (logits[:, j], rows) if slot_rows is None else (logits, slot_rows[rows, j])  # never past
            barred = column[at].masked_fill(bar, float("-inf"))
            open_rows = torch.isfinite(barred).any(-1)  # a slot with nothing left keeps its token
            column[at[open_rows]] = barred[open_rows]  # through the view: edits logits
            top[rows, j] = column[at].argmax(-1)
        previous = top[:, j]
        if punctuation is not None:
            word = torch.where(punctuation[previous], word, previous)
    return logits


def _last_words(top: Tensor, punctuation: Tensor | None) -> Tensor:
    """(B, N): at each slot j, the last token of top[:, :j + 1] that is not punctuation (top[:, 0] while there is
    none): the word the scan compares a slot with across pauses."""
    if punctuation is None:
        return top
    slots = torch.arange(top.shape[1], device=top.device).expand_as(top)
    word_slot = torch.where(punctuation[top], torch.zeros_like(slots), slots).cummax(-1).values
    return top.gather(1, word_slot)


def _clashes(top: Tensor, word_of: Tensor, punctuation: Tensor | None, pad_token_id: int) -> Tensor:
    """(B, N - 1): True where slot j >= 1 repeats its neighbour's word (or, across pauses, the last word)."""
    previous, current = top[:, :-1], top[:, 1:]
    clash = word_of[current] == word_of[previous]
    if punctuation is not None:
        clash |= (word_of[current] == word_of[_last_words(top, punctuation)[:, :-1]]) & ~punctuation[current]
    return clash & (current != pad_token_id)


def _first_clash(top: Tensor, word_of: Tensor, punctuation: Tensor | None, pad_token_id: int) -> int | None:
    """The first slot j >= 1 where any row's first choice repeats its neighbour (or, across pauses, the last word)
    before any barring, or None: the scan changes nothing before it."""
    if top.shape[1] < 2:
        return None
    slots = _clashes(top, word_of, punctuation, pad_token_id).any(0).nonzero()
    return int(slots[0]) + 1 if len(slots) else None


def repeat_share(responses: Sequence[Sequence[int]], block: RepeatBlock, pad_token_id: int) -> float:
    """The share of responses (token ids) in which a token repeats its left neighbour's word, looking past pauses:
    what (B1) would bar. Training decides the bar's default from its data with it (``REPEAT_SHARE_LIMIT``)."""
    responses = [list(r) for r in responses if len(r)]
    if not responses:
        return 0.0
    width = max(2, max(len(r) for r in responses))
    top = torch.tensor([r + [pad_token_id] * (width - len(r)) for r in responses])
    word_of = block.same_word if block.same_word is not None else torch.arange(int(top.max()) + 1)
    punctuation = block.punctuation.bool() if block.punctuation is not None else None
    return _clashes(top, word_of, punctuation, pad_token_id).any(1).float().mean().item()
