"""Consistency distillation of a trained 2D diffusion model into a one- or two-step sampler (seed 003).

    python -m training.train_toy --dataset swissroll --out outputs/toy            # the teacher
    python -m training.distill_toy --teacher outputs/toy/model --out outputs/toy_cd
    python -m training.distill_toy --exact-teacher ring                          # the exact mixture as teacher

Prints and writes metrics.json: the sliced Wasserstein distance to fresh data of the consistency
sampler at 1 and 2 NFE next to the teacher's own samplers at the same NFE (and at 20 NFE), with the
two-sample floor; draws <dataset>_consistency.png.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from diffusion_lm.common.atomic import write_json_atomic
from diffusion_lm.core import VPSchedule, sample
from diffusion_lm.toy.consistency import (
    TEACHER_SOLVERS,
    ConsistencyFunction,
    consistency_distillation_loss,
    consistency_sample,
    distillation_grid,
    ema_update,
)
from diffusion_lm.toy.datasets import TOY_DATASETS, toy_distribution
from diffusion_lm.toy.metrics import distance_to_data
from diffusion_lm.toy.mlp import ToyMLP
from diffusion_lm.toy.training import fit

from .threads import run_on_threads

# the teacher's samplers at 1 and 2 NFE (name, sample() kwargs); every one is a PF-ODE solver
TEACHER_AT_NFE = {
    1: [("ddim, 1 step", dict(method="ddim", steps=1))],
    2: [("ddim, 2 steps", dict(method="ddim", steps=2)),
        ("dpm_solver++, 2 steps", dict(method="dpm_solver++", steps=2)),
        ("heun, 1 step", dict(method="heun", steps=1))],
    20: [("unipc, 20 steps", dict(method="unipc", steps=20))],
}
SECOND_STEP_TIMES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--teacher", type=Path, help="a checkpoint written by training.train_toy (its model/ folder)")
    src.add_argument("--exact-teacher", choices=[d for d in TOY_DATASETS if d != "checkerboard"],
                     help="distil the exact mixture of this dataset under VPSchedule.linear()")
    p.add_argument("--intervals", type=int, default=40, help="N: intervals of the distillation grid")
    p.add_argument("--grid", choices=("logsnr", "karras", "time"), default="logsnr")
    p.add_argument("--solver", choices=TEACHER_SOLVERS, default="heun", help="teacher ODE step between grid times")
    p.add_argument("--groups", type=int, default=8, help="distinct grid intervals per batch (teacher calls per step)")
    p.add_argument("--t-min", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--target-decay", type=float, default=0.95, help="EMA decay of the target network")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; the small MLP is fastest on one (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("outputs/toy_consistency"))
    args = p.parse_args(argv)
    if min(args.intervals, args.steps, args.batch_size, args.groups, args.samples - 1) < 1:
        p.error("--intervals, --steps, --batch-size, --groups must be >= 1 and --samples >= 2")
    if not 0.0 <= args.target_decay < 1.0 or args.lr <= 0:
        p.error("--target-decay must lie in [0, 1) and --lr be > 0")
    return args


def load_teacher(args):
    """(teacher model, its prediction kind, schedule, dataset name)."""
    if args.exact_teacher:
        schedule = VPSchedule.linear()
        return toy_distribution(args.exact_teacher).mixture.model(schedule, "eps"), "eps", schedule, args.exact_teacher
    from diffusion_lm.toy.pretrained import ToyDenoiser

    teacher = ToyDenoiser.from_pretrained(args.teacher).eval()
    if teacher.config.dataset not in TOY_DATASETS:
        raise ValueError(f"the teacher's config names no toy dataset ({teacher.config.dataset!r}); "
                         "train it with training.train_toy.")
    return teacher, teacher.prediction, teacher.schedule, teacher.config.dataset


def main(argv=None) -> dict:
    return run_on_threads(run, parse_args(argv))


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    teacher, prediction, schedule, dataset = load_teacher(args)
    data = toy_distribution(dataset)
    sigma_data = float(data.sample(20000, torch.Generator().manual_seed(args.seed)).std())
    student = ConsistencyFunction(ToyMLP(), schedule, t_min=args.t_min, sigma_data=sigma_data)
    target = copy.deepcopy(student).requires_grad_(False)
    times = distillation_grid(schedule, args.intervals, args.t_min, args.grid)

    def loss_fn(model, x0, gen):
        return consistency_distillation_loss(model, target, teacher, x0, times, teacher_prediction=prediction,
                                             solver=args.solver, groups=args.groups, generator=gen)

    gen = torch.Generator().manual_seed(args.seed)
    log = fit(student, lambda n, g: data.sample(n, g).float(), loss_fn, steps=args.steps, batch_size=args.batch_size,
              lr=args.lr, generator=gen, desc=f"consistency distillation ({dataset})",
              after_step=lambda: ema_update(target, student, args.target_decay))

    x_T = float(schedule.sigma(1.0)) * torch.randn(args.samples, 2, generator=gen)
    score = lambda x, seed=args.seed + 1: distance_to_data(x, data.sample, seed=seed)
    # the second step's time: chosen on one set of fresh data, reported on another
    val = {tau: score(consistency_sample(student, x_T, (1.0, tau), torch.Generator().manual_seed(7)),
                      seed=args.seed + 50) for tau in SECOND_STEP_TIMES}
    tau = min(val, key=lambda k: val[k]["distance"])
    results, samples = {}, {"data": data.sample(args.samples, torch.Generator().manual_seed(args.seed + 3))}
    for nfe, times_ in ((1, (1.0,)), (2, (1.0, tau))):
        x = consistency_sample(student, x_T, times_, torch.Generator().manual_seed(8)).double()
        name = f"consistency, {nfe} step" + ("s" if nfe > 1 else "")
        results[name] = {"nfe": nfe, **score(x)}
        samples[name] = x
    for nfe, runs in TEACHER_AT_NFE.items():
        for name, kw in runs:
            x = sample(teacher, x_T, schedule, prediction=prediction, t_end=0.0, **kw).double()
            results[f"teacher {name}"] = {"nfe": nfe, **score(x)}
            samples[f"teacher {name}"] = x
    metrics = {"dataset": dataset, "teacher": str(args.teacher or f"exact {args.exact_teacher}"),
               "train_seconds": round(log["seconds"], 1), "final_loss": log["final_loss"],
               "intervals": args.intervals, "solver": args.solver, "second_step_time": tau,
               "floor": results["consistency, 1 step"]["floor"],
               "distance_to_data": {k: {"nfe": v["nfe"], "sliced_wasserstein": v["distance"]}
                                    for k, v in results.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plots:
        from diffusion_lm.toy.plots import plot_samples

        shown = {"data": samples["data"]}
        for k in ("teacher ddim, 1 step", "teacher dpm_solver++, 2 steps", "consistency, 1 step",
                  "consistency, 2 steps", "teacher unipc, 20 steps"):
            shown[f"{k}\nSW {results[k]['distance']:.3f}"] = samples[k]
        metrics["pictures"] = [str(plot_samples(shown, args.out / f"{dataset}_consistency.png",
                                                f"consistency distillation, floor {metrics['floor']:.3f}"))]
    write_json_atomic(args.out / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
