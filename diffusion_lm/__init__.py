"""diffusion-lm: continuous (embedding-space) diffusion language models and the diffusion core beneath them.

``diffusion_lm.core`` is the diffusion core (schedules, samplers, guidance, likelihood, losses); ``diffusion_lm.text``
the text model built on it; ``diffusion_lm.toy`` and ``diffusion_lm.images`` the core's 2D and image users. The names
below load on first use, so ``import diffusion_lm`` or ``diffusion_lm.core`` does not import transformers. Using any
text-model name (``diffusion_lm.DiffusionLMPipeline``, ``build_model``, ...) imports ``diffusion_lm.text``, which
registers ``DiffusionLMConfig`` / ``DiffusionLMModel`` with transformers' ``AutoConfig`` / ``AutoModel`` (model type
``"diffusion-lm"``); nothing touches a GPU or the network.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {name: "text" for name in (
    "DiffusionLMConfig", "DiffusionLMModel", "DiffusionLMOutput", "DiffusionLMPipeline", "GenerationConfig", "Rollout",
    "TrainingObjective", "build_model", "minilm_path", "tokenizer_fingerprint", "train_tokenizer",
)}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
