"""Train a small diffusion model on a 2D toy distribution, sample from it and draw the result.

    python -m training.train_toy --dataset ring --steps 3000 --out outputs/toy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from diffusion_lm.core import PREDICTIONS, METHODS, VPSchedule, dsm_loss, sample
from diffusion_lm.core.losses import TIME_SAMPLINGS, WEIGHTINGS
from diffusion_lm.toy import sliced_wasserstein
from diffusion_lm.toy.datasets import TOY_DATASETS, toy_distribution
from diffusion_lm.toy.mlp import ToyMLP


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=TOY_DATASETS, default="ring")
    p.add_argument("--prediction", choices=PREDICTIONS, default="eps")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="none")
    p.add_argument("--t-sampling", choices=TIME_SAMPLINGS, default="uniform")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--method", choices=METHODS, default="unipc")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--samples", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("outputs/toy"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.sample_steps < 1 or args.samples < 2:
        p.error("--steps, --batch-size, --sample-steps must be >= 1 and --samples >= 2")
    if args.lr <= 0:
        p.error("--lr must be > 0")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    data = toy_distribution(args.dataset)
    schedule = VPSchedule.linear()
    model = ToyMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    bar = tqdm(range(args.steps), desc=f"train {args.dataset}")
    for step in bar:
        x0 = data.sample(args.batch_size, gen).float()
        loss = dsm_loss(model, x0, schedule, prediction=args.prediction, weighting=args.weighting,
                        t_sampling=args.t_sampling, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    train_seconds = time.time() - start

    model.eval()
    x_T = torch.randn(args.samples, 2, generator=gen)
    x = sample(model, x_T, schedule, method=args.method, steps=args.sample_steps, prediction=args.prediction,
               t_end=0.0, generator=gen, progress=True).double()
    fresh = data.sample(args.samples, gen)
    floor = sliced_wasserstein(data.sample(args.samples, gen), fresh, 256, torch.Generator().manual_seed(1))
    distance = sliced_wasserstein(x, fresh, 256, torch.Generator().manual_seed(1))
    metrics = {"dataset": args.dataset, "train_seconds": round(train_seconds, 1), "method": args.method,
               "sample_steps": args.sample_steps, "sliced_wasserstein": distance, "two_sample_floor": floor}

    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / f"{args.dataset}_samples.png"
    _plot(fresh, x, figure, f"{args.method}, {args.sample_steps} steps: SW {distance:.3f} (floor {floor:.3f})")
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    print(f"wrote {figure}")
    return metrics


def _plot(data: torch.Tensor, samples: torch.Tensor, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for ax, pts, name in zip(axes, (data, samples), ("data", "samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(name)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    main()
