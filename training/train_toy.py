"""Train a small diffusion model on a 2D toy distribution, sample from it, measure it and draw it.

    python -m training.train_toy --dataset swissroll --loss dsm --prediction eps
    python -m training.train_toy --dataset moons --loss ssm --prediction x0 --weighting snr
    python -m training.train_toy --dataset checkerboard --loss flow --method heun

Writes to --out: metrics.json (sliced Wasserstein distance to fresh data next to the two-sample floor,
held-out PF-ODE negative log-likelihood next to the exact one), <dataset>_samples.png,
<dataset>_trajectories.png, <dataset>_score_field.png and the checkpoint model/ (safetensors + JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusion_lm.common.atomic import write_json_atomic
from diffusion_lm.core import METHODS, PREDICTIONS, FlowSchedule, VPSchedule, convert, sample, sampler_options
from diffusion_lm.core.losses import TIME_SAMPLINGS, WEIGHTINGS
from diffusion_lm.toy.datasets import TOY_DATASETS, ToyDistribution, toy_distribution
from diffusion_lm.toy.metrics import distance_to_data, heldout_nll
from diffusion_lm.toy.pretrained import ToyDenoiser, ToyDenoiserConfig
from diffusion_lm.toy.training import LOSSES, Objective, fit

from .threads import run_on_threads

SCHEDULES = {"linear": VPSchedule.linear, "cosine": VPSchedule.cosine, "flow": FlowSchedule}
# f and g^2 are infinite at t = 1 on the flow path: Euler-Maruyama steps from there diverge
SDE_METHODS = ("euler_maruyama", "pc")
NLL_T_EPS = 1e-3  # the training cut-off: the likelihood is that of the marginal at t = 1e-3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=TOY_DATASETS, default="ring")
    p.add_argument("--loss", choices=LOSSES, default="dsm", help="denoising / sliced score matching, or flow matching")
    p.add_argument("--prediction", choices=PREDICTIONS, default=None, help="default: eps (velocity for --loss flow)")
    p.add_argument("--schedule", choices=tuple(SCHEDULES), default=None, help="default: linear (flow for --loss flow)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="none")
    p.add_argument("--t-sampling", choices=TIME_SAMPLINGS, default="uniform")
    p.add_argument("--projections", type=int, default=1, help="probe vectors per example (--loss ssm)")
    p.add_argument("--steps", type=int, default=5000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--method", choices=METHODS, default="unipc")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--order", type=int, default=None, help="solver order (dpm_solver, dpm_solver++, unipc)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise (--method ddim)")
    p.add_argument("--corrector-steps", type=int, default=1, help="Langevin steps per level (langevin, pc)")
    p.add_argument("--snr", type=float, default=0.16, help="Langevin signal-to-noise ratio (langevin, pc)")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--nll", type=int, default=500, help="held-out points for the PF-ODE likelihood (0: skip)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-save", action="store_true", help="do not write the checkpoint")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; the small MLP is fastest on one (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("outputs/toy"))
    args = p.parse_args(argv)
    if min(args.steps, args.batch_size, args.sample_steps, args.projections, args.corrector_steps) < 1:
        p.error("--steps, --batch-size, --sample-steps, --projections and --corrector-steps must be >= 1")
    if args.samples < 2:
        p.error("--samples must be >= 2")
    if args.lr <= 0 or args.nll < 0 or args.threads < 0:
        p.error("--lr must be > 0, --nll and --threads >= 0")
    args.prediction = args.prediction or ("velocity" if args.loss == "flow" else "eps")
    args.schedule = args.schedule or ("flow" if args.loss == "flow" else "linear")
    if args.loss == "flow" and (args.schedule != "flow" or args.prediction != "velocity"):
        p.error("--loss flow trains a velocity model on the flow path: use --schedule flow --prediction velocity")
    if args.schedule == "flow" and args.method in SDE_METHODS:
        p.error(f"--method {args.method} diverges on the flow schedule (f and g^2 are infinite at t = 1); "
                "use an ODE method, ddpm or ddim")
    try:
        Objective(args.loss, args.prediction, args.weighting, args.t_sampling, args.projections)
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv=None) -> dict:
    return run_on_threads(run, parse_args(argv))


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    data = toy_distribution(args.dataset)
    schedule = SCHEDULES[args.schedule]()
    config = ToyDenoiserConfig(hidden=args.hidden, layers=args.layers, prediction=args.prediction,
                               schedule=schedule.config(), dataset=args.dataset, loss=args.loss)
    model = ToyDenoiser(config)
    objective = Objective(args.loss, args.prediction, args.weighting, args.t_sampling, args.projections)
    gen = torch.Generator().manual_seed(args.seed)
    log = fit(model, lambda n, g: data.sample(n, g).float(), lambda m, x0, g: objective(m, x0, schedule, g),
              steps=args.steps, batch_size=args.batch_size, lr=args.lr, generator=gen,
              desc=f"train {args.dataset} ({args.loss})")

    calls = []

    def counted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return model(x, t)

    x_T = float(schedule.sigma(1.0)) * torch.randn(args.samples, 2, generator=gen)
    given = {"order": args.order, "eta": args.eta or None, "corrector_steps": args.corrector_steps, "snr": args.snr}
    own = {k: v for k, v in given.items()
           if v is not None and (k in sampler_options(args.method) or k in ("order", "eta"))}
    x = sample(counted, x_T, schedule, method=args.method, steps=args.sample_steps, prediction=args.prediction,
               t_end=0.0, generator=gen, progress=True, **own).double()
    distance = distance_to_data(x, data.sample, seed=args.seed + 1)
    metrics = {
        "dataset": args.dataset, "loss": args.loss, "prediction": args.prediction, "schedule": args.schedule,
        "weighting": args.weighting, "t_sampling": args.t_sampling, "steps": args.steps,
        "train_seconds": round(log["seconds"], 1), "final_loss": log["final_loss"],
        "method": args.method, "sample_steps": args.sample_steps, "nfe": len(calls),
        "sliced_wasserstein": distance["distance"], "two_sample_floor": distance["floor"],
    }
    if args.nll:
        held_out = data.sample(args.nll, torch.Generator().manual_seed(args.seed + 2))
        exact = data.log_prob if data.mixture is None else (lambda x: data.mixture.log_prob(x, NLL_T_EPS, schedule))
        metrics["nll"] = heldout_nll(model, held_out, schedule, prediction=args.prediction, exact_log_prob=exact,
                                     t_eps=NLL_T_EPS)

    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plots:
        metrics["pictures"] = [str(p) for p in _draw(model, schedule, data, x, args, metrics)]
    if not args.no_save:
        model.save_pretrained(args.out / "model")
    _write_json(args.out / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    return metrics


def _draw(model: ToyDenoiser, schedule, data: ToyDistribution, x: torch.Tensor, args, metrics: dict) -> list[Path]:
    from diffusion_lm.toy.plots import plot_samples, plot_score_field, plot_trajectories

    shown = data.sample(len(x), torch.Generator().manual_seed(args.seed + 3))
    title = (f"{args.dataset}, {args.loss} ({args.prediction}); {args.method}, {metrics['nfe']} NFE: "
             f"SW {metrics['sliced_wasserstein']:.3f} (floor {metrics['two_sample_floor']:.3f})")
    pictures = [plot_samples({"data": shown, "samples": x}, args.out / f"{args.dataset}_samples.png", title)]

    x_T = float(schedule.sigma(1.0)) * torch.randn(12, 2, generator=torch.Generator().manual_seed(args.seed + 4))
    paths = {}
    for name, method, steps in (("PF-ODE, heun, 25 steps", "heun", 25), ("ancestral SDE, ddpm, 50 steps", "ddpm", 50)):
        states = [x_T]
        sample(model, x_T, schedule, method=method, steps=steps, prediction=args.prediction, t_end=0.0,
               generator=torch.Generator().manual_seed(args.seed + 5), callback=lambda info: states.append(info["x"]))
        paths[name] = torch.stack(states)
    pictures.append(plot_trajectories(paths, shown[:3000], args.out / f"{args.dataset}_trajectories.png"))

    def minus_eps(m, prediction):
        def field(xy: torch.Tensor, t: float) -> torch.Tensor:
            tt = torch.full((len(xy),), t, dtype=torch.float64)
            with torch.no_grad():
                return -convert(m(xy.to(torch.float32), tt.float()).double(), xy, tt, schedule, prediction, "eps")

        return field

    fields = {"learned": minus_eps(model, args.prediction)}
    if data.mixture is not None:
        exact = data.mixture.model(schedule, "eps")
        fields["exact"] = lambda xy, t: -exact(xy, torch.full((len(xy),), t, dtype=torch.float64))
    lim = float(shown.abs().max()) + 0.5
    pictures.append(plot_score_field(fields, (0.02, 0.1, 0.3, 0.7), args.out / f"{args.dataset}_score_field.png",
                                     data=shown[:3000], lim=lim,
                                     title="sigma_t * score = -eps_hat: arrows point to the data"))
    return pictures


def _write_json(path: Path, payload: dict) -> None:
    write_json_atomic(path, payload)


if __name__ == "__main__":
    main()
