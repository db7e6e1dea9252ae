"""Inference: ``DiffusionLMPipeline`` and the ``python -m inference.generate`` command line."""

from diffusion_lm.text.pipeline import DiffusionLMPipeline

__all__ = ["DiffusionLMPipeline"]
