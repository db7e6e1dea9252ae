"""Pictures of 2D diffusion: data next to samples, reverse trajectories, the score field at a few t.

matplotlib is imported inside each function (the ``plot`` extra); files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..common.plotting import pyplot as _pyplot
from ..common.plotting import save_figure


def _limits(points: Tensor, pad: float = 0.3) -> tuple[float, float]:
    lo, hi = float(points.min()), float(points.max())
    return lo - pad, hi + pad


def plot_samples(panels: Mapping[str, Tensor], path: str | os.PathLike, title: str = "") -> Path:
    """Scatter plots side by side with shared axes, e.g. ``{"data": x, "samples": y}``; (N, 2) each."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), sharex=True, sharey=True, squeeze=False)
    lims = _limits(torch.cat([p.double() for p in panels.values()]).clamp(-6, 6))
    for ax, (name, pts) in zip(axes[0], panels.items()):
        pts = pts.double().cpu()
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5, linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(*lims)
        ax.set_ylim(*lims)
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_trajectories(
    paths: Mapping[str, Tensor], data: Tensor, path: str | os.PathLike, title: str = ""
) -> Path:
    """Reverse-process paths of a few points over the data: ``{name: (steps + 1, n, 2)}``, noise first."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(paths), figsize=(4.2 * len(paths), 4.2), sharex=True, sharey=True, squeeze=False)
    data = data.double().cpu()
    lims = _limits(torch.cat([data] + [p.double().reshape(-1, 2) for p in paths.values()]).clamp(-6, 6))
    colors = plt.get_cmap("tab10")
    for ax, (name, traj) in zip(axes[0], paths.items()):
        traj = traj.double().cpu()
        ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8", linewidths=0)
        for k in range(traj.shape[1]):
            c = colors(k % 10)
            ax.plot(traj[:, k, 0], traj[:, k, 1], lw=0.8, color=c, alpha=0.9)
            ax.scatter(traj[0, k, 0], traj[0, k, 1], s=12, marker="o", facecolors="none", edgecolors=[c])
            ax.scatter(traj[-1, k, 0], traj[-1, k, 1], s=14, marker="x", color=c)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(*lims)
        ax.set_ylim(*lims)
        ax.set_aspect("equal")
    fig.suptitle(title or "reverse trajectories (o: noise at t = 1, x: sample at t = 0)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_score_field(
    fields: Mapping[str, Callable[[Tensor, float], Tensor]],
    times: Sequence[float],
    path: str | os.PathLike,
    *,
    data: Tensor | None = None,
    lim: float = 3.5,
    grid: int = 19,
    title: str = "",
) -> Path:
    """Arrows of a vector field on a grid, one row per field, one column per t: direction as the
    arrow, log10 of the length as its colour.

    ``fields`` maps a name to ``fn(x (N, 2) float64, t) -> (N, 2)``; pass ``sigma_t * score = -eps_hat``
    (35), which keeps the arrows of every t on one scale.
    """
    plt = _pyplot()
    rows, cols = len(fields), len(times)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.3 * rows), squeeze=False, sharex=True, sharey=True)
    axis = torch.linspace(-lim, lim, grid, dtype=torch.float64)
    xy = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    for r, (name, fn) in enumerate(fields.items()):
        for c, t in enumerate(times):
            ax = axes[r][c]
            if data is not None:
                ax.scatter(data[:, 0].cpu(), data[:, 1].cpu(), s=0.5, c="0.8", linewidths=0)
            arrows = fn(xy, float(t)).double().detach().cpu()
            norm = arrows.norm(dim=1, keepdim=True).clamp_min(1e-12)
            unit = arrows / norm * (2 * lim / grid) * 0.9  # direction at a fixed length, magnitude as colour
            q = ax.quiver(xy[:, 0], xy[:, 1], unit[:, 0], unit[:, 1], norm[:, 0].log10(), angles="xy",
                          scale_units="xy", scale=1.0, width=0.006, cmap="viridis", clim=(-1.0, 1.5))
            ax.set_title(f"{name}, t = {t:g}", fontsize=9)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
    fig.suptitle(title or "sigma_t * score (arrows point to the data)", fontsize=10)
    fig.tight_layout()
    fig.colorbar(q, ax=axes, shrink=0.6, label="log10 of the length")
    return save_figure(fig, path)
