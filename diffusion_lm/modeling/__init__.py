"""The Section 9 text diffusion model in transformers' conventions; importing it registers the model with
transformers' ``AutoConfig`` / ``AutoModel`` (model type ``"diffusion-lm"``)."""

from transformers import AutoConfig, AutoModel

from .configuration import DiffusionLMConfig
from .embeddings import build_model, encoder_table, random_table
from .model import DiffusionLMModel, DiffusionLMOutput

AutoConfig.register(DiffusionLMConfig.model_type, DiffusionLMConfig, exist_ok=True)
AutoModel.register(DiffusionLMConfig, DiffusionLMModel, exist_ok=True)

__all__ = ["DiffusionLMConfig", "DiffusionLMModel", "DiffusionLMOutput", "build_model", "encoder_table", "random_table"]
