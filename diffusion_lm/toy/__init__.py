"""Toy distributions with exact answers, for learning, testing and benchmarking diffusion."""

from .metrics import sliced_wasserstein
from .mixture import GaussianMixture

__all__ = ["GaussianMixture", "sliced_wasserstein"]
