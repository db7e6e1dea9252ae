"""Metrics that need no tracker to read: a JSONL file, and a PNG of the curves at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

from diffusion_lm.common.atomic import write_text_atomic


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, rows after the checkpoint's step are dropped first."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line and json.loads(line).get("step", 0) <= resume_step]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, step: int, **values) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")

    def rows(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def plot_curves(rows: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Training and validation loss, and BLEU/chrF against step, in one PNG (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series = lambda key: [(r["step"], r[key]) for r in rows if key in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
        pts = series(key)
        if pts:
            ax1.plot(*zip(*pts), label=label, marker="o" if key.startswith("val") else None, markersize=3)
    ax1.set_xlabel("step")
    ax1.set_yscale("log")
    ax1.legend()
    for key in ("bleu", "chrf", "copy_bleu"):
        pts = series(key)
        if pts:
            ax2.plot(*zip(*pts), label=key, marker="o", markersize=3, linestyle="--" if key == "copy_bleu" else "-")
    ax2.set_xlabel("step")
    ax2.set_ylabel("score")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend()
    else:
        ax2.text(0.5, 0.5, "no generation metrics (eval.generate = 0)", ha="center", va="center",
                 transform=ax2.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
