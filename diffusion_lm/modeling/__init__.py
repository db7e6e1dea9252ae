"""The Section 9 text diffusion model in transformers' conventions."""

from .configuration import DiffusionLMConfig
from .embeddings import build_model, encoder_table, random_table
from .model import DiffusionLMModel, DiffusionLMOutput

__all__ = ["DiffusionLMConfig", "DiffusionLMModel", "DiffusionLMOutput", "build_model", "encoder_table", "random_table"]
