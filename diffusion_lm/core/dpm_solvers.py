"""DPM-Solver (single-step, noise prediction, orders 1-3) and DPM-Solver++ (multistep, data prediction),
with an optional UniPC-style corrector.

Both step in the log-SNR lambda (48) with the exponential integrator of Lu et al. (2022); THEORY (51)
is the first-order step. Exponentials of large steps are written through alpha and sigma, e.g.
``sigma_s (e^h - 1) = alpha_s sigma_t / alpha_t - sigma_s``, so a final step to sigma = 0 stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .arith import lincomb
from .denoiser import Denoiser, Point, points
from .steps import Callback, intervals, report


def _first_order(x0: Tensor, eps: Tensor, target: Point) -> Tensor:
    """DPM-Solver-1 (51) to ``target``, written as alpha_s x0_hat + sigma_s eps_hat (identical to DDIM)."""
    return target.alpha * x0 + target.sigma * eps


def dpm_solver(den: Denoiser, x: Tensor, ts: Tensor, *, order: int = 3, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Single-step DPM-Solver-1/2/3 in noise prediction, one order-k step per grid interval.

    NFE = order * steps; a final step to sigma = 0 is a first-order step (order - 1 fewer NFE).
    Needs alpha > 0 at the start (FlowSchedule at t = 1 has alpha = 0: use ``dpm_solver++``).
    """
    if den.point(float(ts[0])).alpha == 0.0:
        raise ValueError("dpm_solver (noise prediction) needs alpha > 0 at t_start; "
                         "use method='dpm_solver++' or t_start < 1.")
    ratios = {1: (), 2: (1 / 2,), 3: (1 / 3, 2 / 3)}[order]
    # the intermediate times t(lambda_t + r h) of every step, in one vectorised pass
    schedule = den.schedule
    lam = schedule.log_snr(ts)
    inner = [points(schedule, schedule.t_from_log_snr(lam[:-1] + r * (lam[1:] - lam[:-1]))) for r in ratios]
    for i, pt, ps in intervals(den.schedule, ts, progress, f"dpm_solver-{order}"):
        x0, eps = den(x, pt, "x0", "eps")
        x_next = _first_order(x0, eps, ps)
        if ps.sigma > 0.0 and order >= 2:
            h = ps.lam - pt.lam
            k_s = ps.alpha * pt.sigma / pt.alpha - ps.sigma  # sigma_s (e^h - 1)
            if order == 2:
                pu = inner[0][i]
                (eps_u,) = den(_first_order(x0, eps, pu), pu, "eps")
                x_next = x_next - k_s * (eps_u - eps)  # sigma_s / (2 r1) (e^h - 1) D1 with r1 = 1/2
            else:
                r1, r2 = ratios
                p1, p2 = inner[0][i], inner[1][i]
                (eps_1,) = den(_first_order(x0, eps, p1), p1, "eps")
                d1 = eps_1 - eps
                k_2 = p2.alpha * pt.sigma / pt.alpha - p2.sigma  # sigma_u2 (e^{r2 h} - 1)
                x_2 = _first_order(x0, eps, p2) - (r2 / r1) * (k_2 / (r2 * h) - p2.sigma) * d1
                (eps_2,) = den(x_2, p2, "eps")
                x_next = x_next - (1 / r2) * (k_s / h - ps.sigma) * (eps_2 - eps)
        x = x_next
        report(callback, i, ps, x, x0)
    return x


def dpm_solver_pp(den: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Multistep DPM-Solver++ in data prediction: 2M (order 2) or 3M (order 3).

    Earlier x0 predictions supply the higher-order terms. The first step of 3M is a single-step
    DPM-Solver++(2S) step, so that its local error does not cap the global order at 2; below 15
    steps the last steps lower the order (as in the reference implementation). The step into
    sigma = 0 is second order in sigma/alpha (Adams-Bashforth on dx~/dsigma~ = eps, the DDIM ODE)
    when an earlier prediction exists. NFE = steps (steps + 1 for 3M).
    """
    return _multistep(den, x, ts, order, None, callback, progress, f"dpm_solver++{order}M")


def unipc(den: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, generator: torch.Generator | None = None,
        callback: Callback | None = None, progress: bool = False) -> Tensor:
    """Multistep DPM-Solver++ (2M, or 3M with ``order=3``) with the UniPC-style corrector ``_corrected``:
    every step is corrected with the x0 prediction at its end, which the next step needs anyway, so
    at no extra model evaluation. NFE = steps (+1 for 3M)."""
    return _multistep(den, x, ts, order, _corrected, callback, progress, f"unipc-{order}M")


Corrector = Callable[[Tensor, list, Point, Tensor, bool], Tensor]


def _multistep(den: Denoiser, x: Tensor, ts: Tensor, order: int, corrector: Corrector | None,
        callback: Callback | None, progress: bool, name: str) -> Tensor:
    """The multistep loop of DPM-Solver++, with an optional corrector applied after every predictor step."""
    steps = len(ts) - 1
    history: list[tuple[Point, Tensor, Tensor]] = []  # (point, x, x0_hat), newest last
    x0_next = None
    for i, pt, ps in intervals(den.schedule, ts, progress, name):
        x0 = x0_next if x0_next is not None else den(x, pt, "x0")[0]
        x0_next = None
        history = (history + [(pt, x, x0)])[-3:]
        if ps.sigma == 0.0:
            x = _into_zero_noise(history)
        else:
            k = min(order, len(history), steps - i if steps < 15 else order)
            if i == 0 and order == 3 and steps > 1:
                x_new = _midpoint_step(den, x, x0, pt, ps)
            else:
                x_new = _data_step(x, history, pt, ps, k)
            if corrector is not None and i < steps - 1:
                (x0_next,) = den(x_new, ps, "x0")
                x_new = corrector(x, history, ps, x0_next, order >= 3 and len(history) >= 2)
            x = x_new
        report(callback, i, ps, x, x0)
    return x


def _data_step(x: Tensor, history: list[tuple[Point, Tensor, Tensor]], pt: Point, ps: Point, k: int) -> Tensor:
    """One multistep DPM-Solver++ step of order k from t to s."""
    h = ps.lam - pt.lam
    a_s = ps.alpha - ps.sigma * pt.alpha / pt.sigma  # alpha_s (1 - e^{-h})
    m0 = history[-1][2]
    terms = [(ps.sigma / pt.sigma, x), (a_s, m0)]  # first order: (sigma_s/sigma_t) x + alpha_s (1 - e^{-h}) m0
    if k == 2:
        p1, _, m1 = history[-2]
        r0 = (pt.lam - p1.lam) / h
        # D = (1 + 1/(2 r)) m0 - 1/(2 r) m1
        terms += [(a_s / (2 * r0), m0), (-a_s / (2 * r0), m1)]
    elif k == 3:
        # x_s = sigma_s/sigma_t x_t + sigma_s int e^lam x0(lam) dlam with x0(lam_t + tau) = m0 + tau x0' + tau^2/2 x0'';
        # from the last three predictions d1 ~ h x0' and d2 ~ h^2 x0''/2 (divided differences):
        #   d1_0 = (m0 - m1)/r0, d1_1 = (m1 - m2)/r1, d1 = d1_0 + r0/(r0+r1) (d1_0 - d1_1), d2 = (d1_0 - d1_1)/(r0+r1)
        (p1, _, m1), (p2, _, m2) = history[-2], history[-3]
        r0, r1 = (pt.lam - p1.lam) / h, (p1.lam - p2.lam) / h
        em1 = math.expm1(-h)
        phi_1 = em1 / h + 1  # int_0^h tau e^(tau - h) dtau / h
        phi_2 = (h * h - 2 * (h + em1)) / (h * h)  # int_0^h tau^2 e^(tau - h) dtau / h^2
        # (the reference implementation weights d2 by phi_2 / 2, which caps 3M at second order)
        a1, a2 = ps.alpha * phi_1, ps.alpha * phi_2  # x_s += a1 d1 + a2 d2 = u d1_0 - v d1_1
        q = r0 / (r0 + r1)
        u, v = a1 * (1 + q) + a2 / (r0 + r1), a1 * q + a2 / (r0 + r1)
        terms += [(u / r0, m0), (-u / r0 - v / r1, m1), (v / r1, m2)]
    return lincomb(*terms)


def _corrected(x: Tensor, history: list[tuple[Point, Tensor, Tensor]], ps: Point, x0_s: Tensor,
               quadratic: bool) -> Tensor:
    """The step t -> s again, integrating exactly the line (or parabola, with the prediction before t)
    through the x0 predictions, now including ``x0_s`` at s: x0(lam_t + u h) = m0 + a1 u + a2 u^2."""
    pt, _, m0 = history[-1]
    h = ps.lam - pt.lam
    em1 = math.expm1(-h)
    b1 = ps.alpha * (em1 / h + 1)  # alpha_s h int_0^1 u e^{h(u - 1)} du
    terms = [(ps.sigma / pt.sigma, x), (ps.alpha - ps.sigma * pt.alpha / pt.sigma - b1, m0), (b1, x0_s)]
    if quadratic:
        # a2 = ((m1 - m0) + r (x0_s - m0)) / (r (1 + r)) with the earlier prediction m1 at u = -r; a1 = x0_s - m0 - a2
        p1, _, m1 = history[-2]
        r = (pt.lam - p1.lam) / h
        b2 = ps.alpha * (h * h - 2 * (h + em1)) / (h * h)  # alpha_s h int_0^1 u^2 e^{h(u - 1)} du
        w = (b2 - b1) / (r * (1 + r))
        terms += [(w, m1), (-w * (1 + r), m0), (w * r, x0_s)]
    return lincomb(*terms)


def _midpoint_step(den: Denoiser, x: Tensor, x0: Tensor, pt: Point, ps: Point) -> Tensor:
    """Single-step DPM-Solver++(2S) with r = 1/2: a first-order step to the log-SNR midpoint u, then
    the step t -> s with the x0 prediction taken there."""
    pu = den.point(float(den.schedule.t_from_log_snr((pt.lam + ps.lam) / 2)))
    x_u = (pu.sigma / pt.sigma) * x + (pu.alpha - pu.sigma * pt.alpha / pt.sigma) * x0
    (x0_u,) = den(x_u, pu, "x0")
    return (ps.sigma / pt.sigma) * x + (ps.alpha - ps.sigma * pt.alpha / pt.sigma) * x0_u


def _into_zero_noise(history: list[tuple[Point, Tensor, Tensor]]) -> Tensor:
    """The step to sigma = 0. In x~ = x/alpha and sigma~ = sigma/alpha the PF-ODE is dx~/dsigma~ = eps_hat
    (the DDIM ODE); its first-order step lands on x0_hat, the two-step Adams-Bashforth step uses the
    previous eps_hat as well (and is exact where eps_hat is linear in sigma~, as near sigma~ = 0)."""
    p, x, x0 = history[-1]
    if len(history) < 2:
        return x0
    q, x_q, x0_q = history[-2]
    s_p, s_q = p.sigma / p.alpha, q.sigma / q.alpha
    eps_p, eps_q = (x / p.alpha - x0) / s_p, (x_q / q.alpha - x0_q) / s_q
    r = s_p / (s_q - s_p)  # last step over the previous one, both in sigma~
    return x / p.alpha - s_p * ((1 + r / 2) * eps_p - (r / 2) * eps_q)
