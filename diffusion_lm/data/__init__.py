"""Prompt/response data: batching for the text model and synthetic tasks that test conditioning."""

from .batching import PairBatch, encode_pairs, encode_prompts
from .synthetic import synthetic_pairs

__all__ = ["PairBatch", "encode_pairs", "encode_prompts", "synthetic_pairs"]
