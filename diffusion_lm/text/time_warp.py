"""Time warping (CDCD, Dieleman et al. 2022, section 3.3): train and sample where the text is decided.

The rounding cross-entropy (123) of a text model rises with t from ~0 (the noisy response still shows
its tokens) to the entropy of the response given the prompt alone. Almost all of that rise happens in
a narrow band of noise levels; uniform t spends most of training outside it. ``TimeWarp`` keeps a
running estimate L(t) of the loss on ``bins`` equal bins of [t_min, 1], fits it by an increasing
(isotonic) function, and draws t with density proportional to its slope, mixed with a uniform share:

    pi(t) = (1 - u) L'(t) / (L(1) - L(t_min)) + u / (1 - t_min)                     (W1)

i.e. t is uniform in the warped time ``F(t) = int_{t_min}^t pi``. Sampling grids are uniform in F too
(equal loss decrease per step). The loss is not reweighted by 1/pi: like CDCD, warping deliberately
moves the training effort. The statistics are buffers, so they are saved and resumed with the weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

WARP_BINS = 32
WARP_UNIFORM = 0.2  # share of uniform t in (W1): every noise level keeps some training, and fresh statistics
WARP_RATE = 0.1  # running-mean rate of a bin's loss, per batch that hits the bin
WARP_MIN_HITS = 4  # until every bin has this many updates, t is uniform


def isotonic_increasing(y: Tensor) -> Tensor:
    """The least-squares non-decreasing fit of ``y`` (1-D), by pooling adjacent violators."""
    values, sizes = [], []
    for v in y.tolist():
        values.append(v)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            n = sizes[-2] + sizes[-1]
            merged = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / n
            values[-2:], sizes[-2:] = [merged], [n]
    return torch.tensor([v for v, n in zip(values, sizes) for _ in range(n)], dtype=y.dtype)


class TimeWarp(nn.Module):
    """A piecewise-constant density pi(t) on [t_min, 1] learnt from the per-example rounding loss."""

    def __init__(self, t_min: float, bins: int = WARP_BINS):
        super().__init__()
        self.t_min = float(t_min)
        self.register_buffer("loss", torch.zeros(bins, dtype=torch.float64), persistent=True)
        self.register_buffer("hits", torch.zeros(bins, dtype=torch.float64), persistent=True)

    @property
    def bins(self) -> int:
        return self.loss.numel()

    @property
    def edges(self) -> Tensor:
        return torch.linspace(self.t_min, 1.0, self.bins + 1, dtype=torch.float64)

    @property
    def ready(self) -> bool:
        return bool((self.hits >= WARP_MIN_HITS).all())

    def bin_mass(self) -> Tensor:
        """Probability of each bin under (W1); uniform until every bin has been seen ``WARP_MIN_HITS`` times."""
        uniform = torch.full((self.bins,), 1.0 / self.bins, dtype=torch.float64)
        if not self.ready:
            return uniform
        fit = isotonic_increasing(self.loss.detach().cpu())
        rise = torch.gradient(fit)[0] if self.bins > 1 else torch.ones(1, dtype=torch.float64)  # L' per bin
        if rise.sum() <= 0:
            return uniform
        return (1 - WARP_UNIFORM) * rise / rise.sum() + WARP_UNIFORM * uniform

    def cdf_knots(self) -> tuple[Tensor, Tensor]:
        """(t, F(t)) at the bin edges: F rises linearly inside each bin."""
        mass = self.bin_mass()
        return self.edges, torch.cat([mass.new_zeros(1), mass.cumsum(0)]).clamp(max=1.0)

    def t_of_warped(self, u: Tensor) -> Tensor:
        """t = F^{-1}(u) for u in [0, 1] (float64, on u's device)."""
        t_knots, f_knots = self.cdf_knots()
        return _interp(u.to(torch.float64).cpu(), f_knots, t_knots).to(u.device)

    def warped_of_t(self, t: Tensor) -> Tensor:
        """F(t) for t in [t_min, 1]."""
        t_knots, f_knots = self.cdf_knots()
        return _interp(t.to(torch.float64).cpu(), t_knots, f_knots).to(t.device)

    def sample(self, batch: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """t (B,) drawn from (W1), float64."""
        gen_device = generator.device if generator is not None else device
        u = torch.rand((batch,), generator=generator, dtype=torch.float64, device=gen_device)
        return self.t_of_warped(u).to(device)

    def grid(self, steps: int, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
        """``steps + 1`` decreasing times from t_start to t_end, uniform in the warped time F."""
        lo = max(t_end, self.t_min)
        f_hi, f_lo = self.warped_of_t(torch.tensor([t_start, lo], dtype=torch.float64)).tolist()
        ts = self.t_of_warped(torch.linspace(f_hi, f_lo, steps + 1, dtype=torch.float64))
        ts[0], ts[-1] = t_start, t_end
        return ts

    @torch.no_grad()
    def update(self, t: Tensor, loss: Tensor) -> None:
        """Fold a batch of per-example losses at times t into the per-bin running means."""
        t, loss = t.detach().to(torch.float64).cpu(), loss.detach().to(torch.float64).cpu()
        idx = ((t - self.t_min) / (1 - self.t_min) * self.bins).long().clamp(0, self.bins - 1)
        total = torch.zeros(self.bins, dtype=torch.float64).index_add_(0, idx, loss)
        count = torch.zeros(self.bins, dtype=torch.float64).index_add_(0, idx, torch.ones_like(loss))
        hit = count > 0
        mean = total[hit] / count[hit]
        old = self.loss.cpu()
        first = self.hits.cpu()[hit] == 0
        new = torch.where(first, mean, (1 - WARP_RATE) * old[hit] + WARP_RATE * mean)
        old[hit] = new
        self.loss.copy_(old.to(self.loss.device))
        self.hits.add_(hit.to(self.hits.device, torch.float64))


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x (xp increasing; flat pieces of xp are skipped)."""
    keep = torch.cat([torch.tensor([True]), torch.diff(xp) > 0])
    xp, fp = xp[keep], fp[keep]
    x = x.clamp(float(xp[0]), float(xp[-1]))
    i = torch.searchsorted(xp, x.contiguous(), right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    return f0 + (f1 - f0) * (x - x0) / (x1 - x0)
