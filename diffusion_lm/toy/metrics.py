"""Distances between sample sets, and the held-out likelihood of a model next to the exact one."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..core import log_likelihood
from ..core.denoiser import Model
from ..core.schedules import Schedule


def sliced_wasserstein(a: Tensor, b: Tensor, projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance between two sample sets (N, d) and (M, d).

    Both sets are projected on ``projections`` random unit directions; each 1-D W2 distance is
    computed between matched quantiles (on a common grid of ``min(N, M)`` levels), and the squared
    distances are averaged over directions before the square root.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two sample sets of shape (N, d) and (M, d), got {tuple(a.shape)} and {tuple(b.shape)}.")
    a, b = a.to(torch.float64), b.to(torch.float64)
    dirs = torch.randn(a.shape[1], projections, generator=generator, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = (a @ dirs).sort(0).values, (b @ dirs).sort(0).values
    n = min(len(pa), len(pb))
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    qa = pa[(levels * len(pa)).long().clamp(max=len(pa) - 1)]
    qb = pb[(levels * len(pb)).long().clamp(max=len(pb) - 1)]
    return float(((qa - qb) ** 2).mean().sqrt())


def distance_to_data(
    samples: Tensor, sample_data: Callable[[int, torch.Generator], Tensor], *, sets: int = 3, seed: int = 0
) -> dict[str, float]:
    """Sliced Wasserstein distance of ``samples`` (N, d) to fresh data, next to the two-sample floor.

    ``distance`` is the mean over ``sets`` fresh data sets of size N; ``floor`` is the mean distance
    between two independent data sets of size N (what a perfect sampler scores), over as many pairs.
    Projections and data come from generators seeded by ``seed``: the same seed compares samplers
    on the same data and directions.
    """
    gen = torch.Generator().manual_seed(seed)
    n, dist, floor = samples.shape[0], 0.0, 0.0
    samples = samples.double()
    for k in range(sets):
        fresh, other = sample_data(n, gen).double(), sample_data(n, gen).double()
        dist += sliced_wasserstein(samples, fresh, generator=torch.Generator().manual_seed(seed + k))
        floor += sliced_wasserstein(other, fresh, generator=torch.Generator().manual_seed(seed + k))
    return {"distance": dist / sets, "floor": floor / sets}


def heldout_nll(
    model: Model,
    x0: Tensor,
    schedule: Schedule,
    *,
    prediction: str,
    exact_log_prob: Callable[[Tensor], Tensor] | None = None,
    t_eps: float = 1e-3,
    tol: float = 1e-4,
    batch_size: int = 500,
) -> dict[str, float]:
    """Mean negative log-likelihood in nats of held-out points under the model's PF-ODE, and under the truth.

    The model's log-density of the marginal at ``t_eps`` comes from ``log_likelihood`` with the exact
    divergence (THEORY section 7). ``t_eps`` defaults to the training cut-off: below it the learned
    score is extrapolated, grows like 1/sigma_t and makes the ODE stiff. ``exact_log_prob`` should be
    the density of the same marginal (``GaussianMixture.log_prob(x, t_eps, schedule)``); then
    ``model_nll - exact_nll`` estimates KL(p_t_eps || model) >= 0. ``tol`` is the ODE solver's rtol
    and atol (1e-4 moves the NLL by < 1e-3 nats from 1e-5 on the toy models, at half the cost).
    """
    logp = torch.cat([
        log_likelihood(model, chunk, schedule, prediction=prediction, divergence="exact", t_eps=t_eps,
                       rtol=tol, atol=tol)
        for chunk in x0.split(batch_size)
    ])
    out = {"model_nll": float(-logp.mean()), "model_nll_se": float(logp.std() / len(logp) ** 0.5)}
    if exact_log_prob is not None:
        exact = exact_log_prob(x0.double())
        out["exact_nll"] = float(-exact.mean())
        out["kl_estimate"] = float((exact.to(logp.dtype) - logp).mean())
        out["kl_estimate_se"] = float((exact.to(logp.dtype) - logp).std() / len(logp) ** 0.5)
    return out
