"""scikit-learn's 8x8 handwritten digits (bundled with it, no download) as diffusion data.

Pixels take 17 levels, 0..16. The model works in [-1, 1]: level k covers the bin
``[k, k + 1) * 2/17 - 1``. Training uses uniform dequantisation (a level plus U[0, 1) noise, then
scaled), so the model is a density on [-1, 1]^64 and ``bits_per_dim(..., data_width=2, bins=17)`` of
dequantised test images is an upper bound on the discrete negative log-likelihood in bits (Jensen,
Theis et al. 2016); a uniform model scores log2(17) = 4.09 bits per dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LEVELS = 17
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
DATA_WIDTH = 2.0


@dataclass(frozen=True)
class DigitsSplit:
    """Images as levels (N, 1, 8, 8) int64 in [0, 16] and their labels (N,) int64."""

    levels: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def dequantized(self, generator: torch.Generator | None = None) -> Tensor:
        return dequantize(self.levels, generator)


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[DigitsSplit, DigitsSplit]:
    """(train, test) of the 1797 digits, stratified by class, the same split for the same seed."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the digits data ships with scikit-learn: pip install 'diffusion-lm[images]'") from err
    bunch = load_digits()
    levels = torch.as_tensor(bunch.images, dtype=torch.int64).reshape(-1, *IMAGE_SHAPE)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(NUM_CLASSES):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = round(test_fraction * len(idx))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train, test = torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
    return DigitsSplit(levels[train], labels[train]), DigitsSplit(levels[test], labels[test])


def dequantize(levels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Levels to [-1, 1] with uniform noise inside each bin: ``(k + u) * 2/17 - 1``, u ~ U[0, 1)."""
    u = torch.rand(levels.shape, generator=generator, dtype=torch.float32)
    return (levels.float() + u) * (DATA_WIDTH / LEVELS) - 1.0


def bin_centres(levels: Tensor) -> Tensor:
    """Levels to the centres of their bins in [-1, 1]."""
    return (levels.float() + 0.5) * (DATA_WIDTH / LEVELS) - 1.0


def quantize(x: Tensor) -> Tensor:
    """Model-space images back to levels 0..16 (the bin each value falls in, clipped)."""
    return torch.floor((x.float() + 1.0) * (LEVELS / DATA_WIDTH)).clamp(0, LEVELS - 1).to(torch.int64)
