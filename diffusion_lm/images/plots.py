"""Grids of generated digits as PNG: one panel per setting (e.g. guidance scale), one row per class."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..common.plotting import pyplot as _pyplot
from ..common.plotting import save_figure
from .digits import LEVELS


def tile(levels: Tensor, rows: int) -> Tensor:
    """(rows * cols, 1, 8, 8) levels to one (rows * 9 - 1, cols * 9 - 1) image in [0, 1], 1-pixel gaps."""
    n, _, h, w = levels.shape
    if n % rows:
        raise ValueError(f"{n} images do not fill {rows} rows.")
    cols = n // rows
    canvas = torch.ones(rows * (h + 1) - 1, cols * (w + 1) - 1)
    for k in range(n):
        r, c = divmod(k, cols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = levels[k, 0].float() / (LEVELS - 1)
    return canvas


def plot_digit_grids(panels: Mapping[str, Tensor], path: str | os.PathLike, rows: int = 10, title: str = "") -> Path:
    """Side-by-side grids of levels (rows * cols, 1, 8, 8), dark strokes on white as in the data."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, (name, levels) in zip(axes[0], panels.items()):
        ax.imshow(tile(levels, rows), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=130)
