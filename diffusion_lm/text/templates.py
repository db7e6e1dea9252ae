"""Response templates for infilling: text with ``[FILL]`` slots (``[FILL:n]`` for n of them), as token ids and
a mask of the given slots (the general form ``generate_ids`` takes)."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

FILL = re.compile(r"\[FILL(?::(\d+))?\]")


def encode_template(tokenizer: Any, template: str, max_response_length: int,
                    pad_token_id: int) -> tuple[Tensor, Tensor]:
    """``(ids, given)`` of shape (N,): the template's tokens at the given slots, pad after its end (also given),
    and False at every ``[FILL]`` slot, which the rollout generates.

    >>> encode_template(tok, "In the beginning [FILL:4] the earth.", 32, 0)
    """
    if not isinstance(template, str):
        raise ValueError("a response template must be a string with [FILL] or [FILL:n] slots, got "
                         f"{type(template).__name__}.")
    ids: list[int] = []
    given: list[bool] = []
    position = 0
    for match in FILL.finditer(template):
        text = template[position : match.start()]
        if text.strip():
            piece = tokenizer(text.strip(), add_special_tokens=False)["input_ids"]
            ids += piece
            given += [True] * len(piece)
        count = int(match.group(1) or 1)
        if count < 1:
            raise ValueError(f"[FILL:{count}] in the template asks for no slots; use [FILL:n] with n >= 1.")
        ids += [pad_token_id] * count
        given += [False] * count
        position = match.end()
    tail = template[position:]
    if tail.strip():
        piece = tokenizer(tail.strip(), add_special_tokens=False)["input_ids"]
        ids += piece
        given += [True] * len(piece)
    if len(ids) > max_response_length:
        raise ValueError(f"the response template takes {len(ids)} token slots but the model has {max_response_length} "
                         "response slots; shorten it or ask for fewer [FILL] slots.")
    rest = max_response_length - len(ids)
    return (torch.tensor(ids + [pad_token_id] * rest, dtype=torch.long),
            torch.tensor(given + [True] * rest, dtype=torch.bool))
