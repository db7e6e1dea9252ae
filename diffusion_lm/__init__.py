"""diffusion-lm: continuous (embedding-space) diffusion language models and the diffusion core beneath them.

Importing the package registers ``DiffusionLMConfig`` / ``DiffusionLMModel`` with transformers'
``AutoConfig`` / ``AutoModel`` (model type ``"diffusion-lm"``); it touches no GPU and no network.
"""

from transformers import AutoConfig, AutoModel

from .assets import minilm_path
from .modeling import DiffusionLMConfig, DiffusionLMModel, DiffusionLMOutput, build_model
from .tokenization import tokenizer_fingerprint, train_tokenizer

AutoConfig.register(DiffusionLMConfig.model_type, DiffusionLMConfig, exist_ok=True)
AutoModel.register(DiffusionLMConfig, DiffusionLMModel, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "DiffusionLMConfig",
    "DiffusionLMModel",
    "DiffusionLMOutput",
    "build_model",
    "minilm_path",
    "tokenizer_fingerprint",
    "train_tokenizer",
]
