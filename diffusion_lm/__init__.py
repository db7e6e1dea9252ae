"""diffusion-lm: continuous (embedding-space) diffusion language models and the diffusion core beneath them.

The names below load on first use, so ``import diffusion_lm.core`` (the diffusion core alone) does not
import transformers. Using any text-model name (``diffusion_lm.DiffusionLMModel``, ``build_model``, the
pipeline) imports ``diffusion_lm.modeling``, which registers ``DiffusionLMConfig`` / ``DiffusionLMModel``
with transformers' ``AutoConfig`` / ``AutoModel`` (model type ``"diffusion-lm"``); nothing touches a GPU
or the network.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DiffusionLMConfig": "modeling",
    "DiffusionLMModel": "modeling",
    "DiffusionLMOutput": "modeling",
    "build_model": "modeling",
    "minilm_path": "assets",
    "tokenizer_fingerprint": "tokenization",
    "train_tokenizer": "tokenization",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
