"""Turning prompt/response text into the model's tensors: prompts padded to the batch, responses to N slots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class PairBatch:
    """``prompt_ids`` (B, P), ``prompt_mask`` (B, P) bool, ``response_ids`` (B, N) padded with the pad id."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    response_ids: Tensor | None = None

    def to(self, device: torch.device | str) -> "PairBatch":
        move = lambda x: None if x is None else x.to(device)
        return PairBatch(move(self.prompt_ids), move(self.prompt_mask), move(self.response_ids))

    def as_kwargs(self) -> dict[str, Tensor]:
        out = {"prompt_ids": self.prompt_ids, "prompt_mask": self.prompt_mask}
        if self.response_ids is not None:
            out["response_ids"] = self.response_ids
        return out


def pad_prompts(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad token lists to the longest: ids (B, P) and a mask that is True on real tokens."""
    width = max(1, max(len(ids) for ids in token_lists))
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.bool)
    for row, tokens in enumerate(token_lists):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = True
    return ids, mask


def pad_responses(token_lists: Sequence[Sequence[int]], length: int, pad_id: int) -> Tensor:
    """Responses padded with the pad token to exactly ``length`` slots: (B, N)."""
    out = torch.full((len(token_lists), length), pad_id, dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        if len(tokens) > length:
            raise ValueError(f"response {row} has {len(tokens)} tokens; the model has {length} response slots "
                             "(max_response_length): shorten it.")
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return out


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without special tokens (the model adds no [CLS]/[SEP])."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def encode_prompts(tokenizer: Any, prompts: Sequence[str], max_length: int, truncation: bool = False) -> PairBatch:
    """Tokenise and pad prompts; a prompt over ``max_length`` tokens is an error unless ``truncation``."""
    ids = tokenize(tokenizer, prompts)
    for i, tokens in enumerate(ids):
        if len(tokens) == 0:
            raise ValueError(f"prompt {i} ({prompts[i]!r}) is empty after tokenisation; give some text.")
        if len(tokens) > max_length:
            if not truncation:
                raise ValueError(
                    f"prompt {i} has {len(tokens)} tokens but the model takes at most {max_length}; "
                    "shorten it or pass truncation=True to keep its first tokens."
                )
            ids[i] = tokens[:max_length]
    prompt_ids, prompt_mask = pad_prompts(ids, tokenizer.pad_token_id)
    return PairBatch(prompt_ids, prompt_mask)


def encode_pairs(
    tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_prompt_length: int, max_response_length: int,
    truncation: bool = False,
) -> PairBatch:
    """A batch of pairs: responses must fit the response slots; prompts too, unless ``truncation`` cuts them."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
    batch = encode_prompts(tokenizer, prompts, max_prompt_length, truncation)
    batch.response_ids = pad_responses(tokenize(tokenizer, responses), max_response_length, tokenizer.pad_token_id)
    return batch
