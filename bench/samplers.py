"""Sampler accuracy and per-step overhead against diffusers, in one run.

Accuracy: the exact 8-component ring mixture under VPSchedule.linear(); every deterministic sampler
starts from the same noise at t = 1 and is compared with a tight scipy DOP853 solution of the PF-ODE
at t = 0. diffusers runs its DDIMScheduler and DPMSolverMultistepScheduler in their default
configurations on the same model (its 1000 betas are our schedule's, so timestep k is t = (k+1)/1000).
Overhead: seconds per step with a free model (it returns a constant), ours / diffusers'.

    python bench/samplers.py [--samples 2000] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffusion_lm.core import VPSchedule, sample
from diffusion_lm.toy import GaussianMixture

N_TRAIN = 1000
SCHEDULE = VPSchedule.linear()

# name, sample() kwargs, NFE per step
OURS = [
    ("euler", {"method": "euler"}, 1),
    ("heun", {"method": "heun"}, 2),
    ("ddim", {"method": "ddim"}, 1),
    ("dpm_solver-2", {"method": "dpm_solver", "order": 2}, 2),
    ("dpm_solver-3", {"method": "dpm_solver", "order": 3}, 3),
    ("dpm_solver++2M", {"method": "dpm_solver++", "order": 2}, 1),
    ("dpm_solver++3M", {"method": "dpm_solver++", "order": 3}, 1),
    ("unipc-2", {"method": "unipc", "order": 2}, 1),
    ("unipc-3", {"method": "unipc", "order": 3}, 1),
]


def reference(mixture: GaussianMixture, x_T: torch.Tensor) -> torch.Tensor:
    from scipy.integrate import solve_ivp

    def rhs(t, y):
        x = torch.from_numpy(y).reshape(x_T.shape)
        tt = torch.full((x.shape[0],), t, dtype=torch.float64)
        f, g2 = float(SCHEDULE.drift_coef(t)), float(SCHEDULE.diffusion_sq(t))
        return (f * x - 0.5 * g2 * mixture.score(x, tt, SCHEDULE)).reshape(-1).numpy()

    sol = solve_ivp(rhs, (1.0, 0.0), x_T.reshape(-1).numpy(), method="DOP853", rtol=1e-11, atol=1e-11)
    return torch.from_numpy(sol.y[:, -1]).reshape(x_T.shape)


def diffusers_schedulers():
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    t = torch.arange(N_TRAIN + 1, dtype=torch.float64) / N_TRAIN
    abar = SCHEDULE.alpha(t) ** 2
    betas = (1 - abar[1:] / abar[:-1]).numpy()
    return {
        "diffusers DDIM": lambda: DDIMScheduler(num_train_timesteps=N_TRAIN, trained_betas=betas),
        "diffusers DPM++2M": lambda: DPMSolverMultistepScheduler(num_train_timesteps=N_TRAIN, trained_betas=betas),
    }


def run_diffusers(make, model_at_index, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    scheduler = make()
    scheduler.set_timesteps(steps)
    x = x_T.clone()
    for k in scheduler.timesteps:
        x = scheduler.step(model_at_index(x, int(k)), k, x).prev_sample
    return x


PROBLEMS = {
    # FFJORD's "8gaussians": centres at radius 4, std 0.5, all divided by sqrt(2)
    "8gaussians (radius 2.83, std 0.354)": dict(radius=2 * 2**0.5, std=0.5 / 2**0.5),
    "sharp ring (radius 2, std 0.1)": dict(radius=2.0, std=0.1),
}


def accuracy_table(n: int, nfes: list[int], radius: float, std: float) -> list[dict]:
    mixture = GaussianMixture.ring(8, radius=radius, std=std)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = reference(mixture, x_T)
    exact = mixture.model(SCHEDULE, "eps")
    by_index = lambda x, k: exact(x, torch.full((x.shape[0],), (k + 1) / N_TRAIN, dtype=torch.float64))
    rows = []

    def add(name, nfe, x):
        err = (x - ref).norm(dim=1)
        rows.append({"sampler": name, "nfe": nfe, "median": float(err.median()),
                     "rms": float(err.pow(2).mean().sqrt())})

    for nfe in nfes:
        for name, kw, per_step in OURS:
            steps = nfe // per_step
            if steps * per_step != nfe or steps < 1:
                continue
            warmup = 1 if kw.get("order") == 3 and kw["method"] in ("dpm_solver++", "unipc") else 0
            if steps - warmup < 1:
                continue
            # 3M spends one NFE on its single-step warm-up: give it one step fewer, the same NFE
            add(name, nfe, sample(exact, x_T, SCHEDULE, steps=steps - warmup, t_end=0.0, **kw))
        for name, make in diffusers_schedulers().items():
            add(name, nfe, run_diffusers(make, by_index, x_T, nfe))
    return rows


def overhead(batch: int = 64, steps: int = 200, repeats: int = 7) -> dict[str, float]:
    """Median seconds per step with a free model, for our samplers and the two diffusers schedulers."""
    x_T = torch.randn(batch, 2)
    out = torch.zeros_like(x_T)
    free = lambda x, t: out
    free_index = lambda x, k: out
    jobs = {
        "ddim": lambda: sample(free, x_T, SCHEDULE, method="ddim", steps=steps),
        "dpm_solver++2M": lambda: sample(free, x_T, SCHEDULE, method="dpm_solver++", steps=steps),
        "dpm_solver-3": lambda: sample(free, x_T, SCHEDULE, method="dpm_solver", order=3, steps=steps // 3),
        "unipc-3": lambda: sample(free, x_T, SCHEDULE, method="unipc", order=3, steps=steps),
        "heun": lambda: sample(free, x_T, SCHEDULE, method="heun", steps=steps // 2),
        "euler_maruyama": lambda: sample(free, x_T, SCHEDULE, method="euler_maruyama", steps=steps),
        "pc": lambda: sample(free, x_T, SCHEDULE, method="pc", steps=steps // 2),
    }
    for name, make in diffusers_schedulers().items():
        jobs[name] = lambda make=make: run_diffusers(make, free_index, x_T, steps)
    nfe = {"dpm_solver-3": 3 * (steps // 3), "heun": 2 * (steps // 2), "pc": 2 * (steps // 2), "unipc-3": steps + 1}
    times = {name: [] for name in jobs}
    for _ in range(repeats):  # interleaved, so drifting machine load hits every job alike
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append((time.perf_counter() - start) / nfe.get(name, steps))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = 256 if args.quick else args.samples
    nfes = [5, 10, 20, 50]
    for title, params in PROBLEMS.items():
        rows = accuracy_table(n, nfes, **params)
        print(f"## Accuracy on {title}: per-sample error vs the reference PF-ODE solution at t = 0 "
              f"({n} samples, VP linear)\n")
        names = list(dict.fromkeys(r["sampler"] for r in rows))
        print("| sampler | " + " | ".join(f"NFE {k} median / RMS" for k in nfes) + " |")
        print("|---|" + "---|" * len(nfes))
        for name in names:
            cells = []
            for k in nfes:
                r = [r for r in rows if r["sampler"] == name and r["nfe"] == k]
                cells.append(f"{r[0]['median']:.2e} / {r[0]['rms']:.2e}" if r else "-")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print("\nBest of ours vs diffusers' default DPM++2M (median error):\n")
        for k in (10, 20):
            ours = [r for r in rows if r["nfe"] == k and not r["sampler"].startswith("diffusers")]
            best = min(ours, key=lambda r: r["median"])
            peer = next(r for r in rows if r["nfe"] == k and r["sampler"] == "diffusers DPM++2M")
            print(f"- NFE {k}: {best['sampler']} {best['median']:.2e} vs {peer['median']:.2e}: "
                  f"{peer['median'] / best['median']:.1f}x more accurate")
        print()

    per_step = overhead(repeats=3 if args.quick else 7)
    print("## Per-step overhead with a free model (batch 64, 200 NFE, median of interleaved repeats)\n")
    print("| sampler | us / step | ratio to diffusers DPM++2M | ratio to diffusers DDIM |")
    print("|---|---|---|---|")
    for name, s in per_step.items():
        print(f"| {name} | {s * 1e6:.1f} | {s / per_step['diffusers DPM++2M']:.2f} | "
              f"{s / per_step['diffusers DDIM']:.2f} |")


if __name__ == "__main__":
    main()
