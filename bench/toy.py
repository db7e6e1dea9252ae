"""Distance to data against NFE for every sampler, on a trained 2D model next to the exact model.

The trained model is a ToyDenoiser (training.train_toy defaults, or --checkpoint); the exact model is
the dataset's Gaussian mixture under the same schedule (for the ring: the "8gaussians" problem of
bench/samplers.py). Every sampler starts both models from the same noise and is scored by the sliced
Wasserstein distance to the same fresh data sets, next to the two-sample floor (what exact samples
score). NFE is counted, not computed from the step count.

    python bench/toy.py [--dataset ring] [--checkpoint outputs/toy/model] [--samples 10000] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from diffusion_lm.core import sample
from diffusion_lm.toy.datasets import toy_distribution
from diffusion_lm.toy.metrics import distance_to_data
from diffusion_lm.toy.pretrained import ToyDenoiser

# name, sample() kwargs, NFE per step (rk45 is adaptive: its rows are tolerances)
SAMPLERS = [
    ("euler_maruyama", {"method": "euler_maruyama"}, 1),
    ("ddpm", {"method": "ddpm"}, 1),
    ("ddim (eta=0)", {"method": "ddim"}, 1),
    ("ddim (eta=1)", {"method": "ddim", "eta": 1.0}, 1),
    ("euler", {"method": "euler"}, 1),
    ("heun", {"method": "heun"}, 2),
    ("dpm_solver-2", {"method": "dpm_solver", "order": 2}, 2),
    ("dpm_solver-3", {"method": "dpm_solver", "order": 3}, 3),
    ("dpm_solver++2M", {"method": "dpm_solver++", "order": 2}, 1),
    ("unipc-2", {"method": "unipc", "order": 2}, 1),
    ("langevin (annealed)", {"method": "langevin"}, 1),
    ("pc (EM + Langevin)", {"method": "pc"}, 2),
]
RK45_TOLERANCES = (1e-2, 1e-3, 1e-4)


def counted(model):
    calls = [0]

    def fn(x, t):
        calls[0] += 1
        return model(x, t)

    return fn, calls


def trained_model(args) -> ToyDenoiser:
    if args.checkpoint:
        return ToyDenoiser.from_pretrained(args.checkpoint).eval()
    from diffusion_lm.training import train_toy

    with tempfile.TemporaryDirectory() as tmp:
        train_toy.main(["--dataset", args.dataset, "--steps", str(args.steps), "--nll", "0", "--no-plots",
                        "--out", tmp])
        return ToyDenoiser.from_pretrained(Path(tmp) / "model").eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("ring", "swissroll", "moons"), default="ring")
    parser.add_argument("--checkpoint", type=Path, help="a ToyDenoiser checkpoint (default: train one, ~1 min)")
    parser.add_argument("--steps", type=int, default=5000, help="training steps when no checkpoint is given")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--nfe", type=str, default="5,10,20,50,100")
    parser.add_argument("--quick", action="store_true", help="2000 samples, NFE 10 and 50")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = 2000 if args.quick else args.samples
    nfes = [10, 50] if args.quick else [int(k) for k in args.nfe.split(",")]
    model = trained_model(args)
    data = toy_distribution(model.config.dataset if args.checkpoint else args.dataset)
    schedule, prediction = model.schedule, model.prediction
    exact = data.mixture.model(schedule, prediction)
    x_T = float(schedule.sigma(1.0)) * torch.randn(n, 2, generator=torch.Generator().manual_seed(0))

    def score(fn, x_start, **kw):
        f, calls = counted(fn)
        x = sample(f, x_start, schedule, prediction=prediction, t_end=0.0,
                   generator=torch.Generator().manual_seed(1), **kw)
        return distance_to_data(x.double(), data.sample, seed=2), calls[0]

    print(f"## {data.name}: sliced W2 to fresh data ({n} samples, mean of 3 data sets), trained vs exact model\n")
    print(f"Trained: {model.config.loss} ({prediction}), {type(schedule).__name__}; exact: the dataset's mixture.\n")
    print("| sampler | NFE | trained | exact | trained / exact |")
    print("|---|---|---|---|---|")
    floor = None
    start = time.time()
    for name, kw, per_step in SAMPLERS:
        for nfe in nfes:
            steps = nfe // per_step
            if steps < 1:
                continue
            trained, used = score(model, x_T, steps=steps, **kw)
            ideal, _ = score(exact, x_T.double(), steps=steps, **kw)
            floor = trained["floor"]
            print(f"| {name} | {used} | {trained['distance']:.4f} | {ideal['distance']:.4f} | "
                  f"{trained['distance'] / ideal['distance']:.2f} |", flush=True)
    for tol in RK45_TOLERANCES:
        trained, used = score(model, x_T, method="rk45", steps=10, rtol=tol, atol=tol)
        ideal, used_exact = score(exact, x_T.double(), method="rk45", steps=10, rtol=tol, atol=tol)
        print(f"| rk45 (tol {tol:g}) | {used} (exact: {used_exact}) | {trained['distance']:.4f} | "
              f"{ideal['distance']:.4f} | {trained['distance'] / ideal['distance']:.2f} |", flush=True)
    print(f"\nTwo-sample floor (two independent data sets of {n}): {floor:.4f}. ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
