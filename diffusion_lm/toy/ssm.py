"""Sliced score matching (seed 003, Theorem 4.2): score matching that needs samples of p_t and nothing else.

Hyvarinen's score matching (34) has the unknown grad log p inside; integrating by parts removes it:
``1/2 E ||s - grad log p||^2 = E [tr(ds/dx) + 1/2 ||s||^2] + const``. Sliced score matching replaces
the trace, d backward passes, by random projections: ``tr(ds/dx) = E_v v^T (ds/dx) v`` for any v with
E[v v^T] = I, one backward pass per projection. Noise-conditional: at each t the objective is taken on
samples x_t of p_t, drawn as alpha_t x0 + sigma_t eps (7); unlike (38), eps never enters the target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..core import convert, loss_weight, sample_time
from ..core.checks import check_choice, check_positive_int
from ..core.denoiser import Model, model_output
from ..core.parameterization import PREDICTIONS
from ..core.schedules import Schedule
from ..core.steps import noise_like, per_example

PROBES = ("rademacher", "gaussian")


def sliced_score_matching(
    score_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    projections: int = 1,
    probe: str = "rademacher",
    variance_reduction: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-example sliced score matching objective (B,), differentiable in the parameters of ``score_fn``.

    ``J = mean_j [v_j^T (ds/dx) v_j] + 1/2 ||s||^2`` (variance-reduced: the second term in closed form),
    or ``mean_j [v_j^T (ds/dx) v_j + 1/2 (v_j^T s)^2]`` without variance reduction. Its expectation over
    x ~ p is ``1/2 E ||s - grad log p||^2`` minus a constant independent of s.

    Args:
        score_fn: x (B, ...) -> score shaped like x.
        x: samples of the distribution whose score is learned.
        projections: number of probe vectors v per example.
        probe: ``rademacher`` (entries +-1) or ``gaussian``.
        variance_reduction: use ``1/2 ||s||^2`` for the expected ``1/2 (v^T s)^2``.
        generator: random source of the probes.
    """
    check_positive_int(projections, "projections")
    check_choice(probe, PROBES, "probe")
    keep_graph = torch.is_grad_enabled()  # False when evaluating under no_grad
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        score = score_fn(x)
        if score.shape != x.shape:
            raise ValueError(f"score_fn returned shape {tuple(score.shape)}; it must match x {tuple(x.shape)}.")
        jvp_term = torch.zeros(x.shape[0], dtype=score.dtype, device=x.device)
        square = torch.zeros_like(jvp_term)
        for _ in range(projections):
            v = noise_like(x, generator)
            if probe == "rademacher":
                v = v.sign()
            (grad,) = torch.autograd.grad((score * v).sum(), x, create_graph=keep_graph, retain_graph=True)
            jvp_term = jvp_term + (grad * v).flatten(1).sum(1)  # v^T (ds/dx) v
            if not variance_reduction:
                square = square + 0.5 * (score * v).flatten(1).sum(1) ** 2
    if variance_reduction:
        return jvp_term / projections + 0.5 * score.pow(2).flatten(1).sum(1)
    return (jvp_term + square) / projections


def ssm_loss(
    model: Model, x0: Tensor, schedule: Schedule, *, prediction: str = "eps", weighting: str = "none",
    t_sampling: str = "uniform", t_eps: float = 1e-3, projections: int = 1, probe: str = "rademacher",
    variance_reduction: bool = True, generator: torch.Generator | None = None, reduction: str = "mean",
) -> Tensor:
    """Noise-conditional sliced score matching, on the scale of ``dsm_loss`` so that the two differ by a constant.

    Per example: ``(w(t) / pi(t)) sigma_t^2 (2 / d) J(x_t, t)`` with J from ``sliced_score_matching`` on
    the model's output converted to a score. Since ``2 J = ||s - grad log p_t||^2 + const`` in
    expectation, and (38) gives ``||eps_hat - eps||^2 = sigma_t^2 ||s - grad log p_t||^2 + const``,
    ``E[ssm_loss] - E[dsm_loss]`` is independent of the model for the same ``weighting`` (w of the
    noise-space loss) and ``t_sampling`` (pi). Draws t, then eps, then the probes from ``generator``.
    """
    check_choice(prediction, PREDICTIONS, "prediction")
    check_choice(reduction, ("mean", "none"), "reduction")
    t, pi = sample_time(x0.shape[0], schedule, t_sampling=t_sampling, t_eps=t_eps, generator=generator,
                        device=x0.device)
    eps = noise_like(x0, generator)
    alpha, sigma = per_example(schedule.alpha(t), x0), per_example(schedule.sigma(t), x0)
    x_t = (alpha * x0.to(torch.float64) + sigma * eps.to(torch.float64)).to(x0.dtype)  # (7)

    def score_fn(x: Tensor) -> Tensor:
        return convert(model_output(model, x, t), x, t, schedule, prediction, "score")  # (35), (134)

    objective = sliced_score_matching(
        score_fn, x_t, projections=projections, probe=probe, variance_reduction=variance_reduction, generator=generator
    )
    dim = x0[0].numel()
    scale = loss_weight(schedule, t, weighting) / pi * schedule.sigma(t) ** 2 * (2.0 / dim)
    losses = scale.to(objective.dtype) * objective
    return losses.mean() if reduction == "mean" else losses
