"""The Section 9 text diffusion model, in transformers' conventions.

Importing it registers ``DiffusionLMConfig`` / ``DiffusionLMModel`` with transformers' ``AutoConfig`` /
``AutoModel`` (model type ``"diffusion-lm"``). Where each part lives:

- ``configuration``, ``objective``: what the network is, and what training minimises;
- ``model``: the frozen table, the denoiser f_theta (``network``, or a pretrained encoder: ``pretrained_denoiser``),
  the length classifier (``length``), the time warp (``time_warp``) and the loss of Algorithm 1;
- ``table``: building the table and a new model (``build_model``); ``tokenization``: tokenizers;
- ``generation_config``, ``rollout``, ``generation``: how a model samples (``GenerationConfig``), the x0-estimate
  policy of one call (``Rollout``), and the sampler loop with the length beam (``generate_ids``);
- ``pipeline``: text in, text out, save/load/share (``DiffusionLMPipeline``);
- ``likelihood``, ``distillation``, ``classifier``, ``templates``, ``repeats``, ``mbr``, ``diagnostics``,
  ``model_card``, ``loading``, ``batching``, ``synthetic``: scoring, few-step students, guidance, infilling,
  de-duplication, sample selection, where decisions happen, the card, loading, tensors from text, test tasks.
"""

from transformers import AutoConfig, AutoModel

from .configuration import DiffusionLMConfig
from .generation_config import GenerationConfig
from .model import DiffusionLMModel, DiffusionLMOutput
from .objective import TrainingObjective
from .pipeline import DiffusionLMPipeline
from .rollout import Rollout
from .table import build_model, encoder_table, minilm_path, random_table
from .tokenization import tokenizer_fingerprint, train_tokenizer

AutoConfig.register(DiffusionLMConfig.model_type, DiffusionLMConfig, exist_ok=True)
AutoModel.register(DiffusionLMConfig, DiffusionLMModel, exist_ok=True)

__all__ = ["DiffusionLMConfig", "DiffusionLMModel", "DiffusionLMOutput", "DiffusionLMPipeline", "GenerationConfig",
           "Rollout", "TrainingObjective", "build_model", "encoder_table", "minilm_path", "random_table",
           "tokenizer_fingerprint", "train_tokenizer"]
