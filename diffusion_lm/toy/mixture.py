"""A Gaussian mixture with closed-form marginals along any diffusion path: exact score, eps, x0 and density.

With x_t = alpha_t x0 + sigma_t eps and x0 ~ sum_k w_k N(mu_k, diag(v_k)), every marginal is again a
mixture, p_t = sum_k w_k N(alpha_t mu_k, alpha_t^2 v_k + sigma_t^2), so the denoiser that diffusion
models learn is known exactly. This is the ground truth the core's samplers and likelihood are tested on.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.checks import as_time
from ..core.parameterization import PREDICTIONS, Point, basis
from ..core.schedules import Schedule


class GaussianMixture:
    """Mixture of diagonal Gaussians in d dimensions, float64 throughout.

    Args:
        means: (K, d) component means.
        stds: (K,) or (K, d) component standard deviations.
        weights: (K,) mixture weights (normalised here); uniform if omitted.
    """

    def __init__(self, means: Tensor, stds: Tensor | float, weights: Tensor | None = None):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(self.means.shape)}.")
        k, d = self.means.shape
        stds = torch.as_tensor(stds, dtype=torch.float64)
        stds = stds[:, None] if stds.ndim == 1 else stds
        if stds.ndim > 2:
            raise ValueError(f"stds must be a number, (K,) or (K, d), got shape {tuple(stds.shape)}.")
        self.vars = stds.expand(k, d).pow(2).contiguous()
        if torch.any(self.vars <= 0):
            raise ValueError("component standard deviations must be > 0.")
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or torch.any(w <= 0):
            raise ValueError(f"weights must be {k} positive numbers.")
        self.log_weights = torch.log(w / w.sum())

    @classmethod
    def ring(cls, components: int = 8, radius: float = 2.0, std: float = 0.1) -> "GaussianMixture":
        """``components`` equal Gaussians evenly spaced on a circle (the classic 2D toy)."""
        angles = torch.arange(components, dtype=torch.float64) * (2 * math.pi / components)
        return cls(radius * torch.stack([angles.cos(), angles.sin()], 1), std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def component(self, k: int) -> "GaussianMixture":
        """The k-th component alone (the class-conditional distribution of class k)."""
        return GaussianMixture(self.means[k : k + 1], self.vars[k : k + 1].sqrt())

    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        """n exact samples (n, d) and optionally their component labels."""
        labels = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[labels] + self.vars[labels].sqrt() * noise
        return (x, labels) if return_labels else x

    # ------------------------------------------------------------------ marginals at time t

    def _marginal(self, x: Tensor, t: Tensor | float, schedule: Schedule | None):
        """Per-example alpha, sigma (B, 1, 1) and per-component log N(x; alpha mu_k, alpha^2 v_k + sigma^2)."""
        x = x.to(torch.float64)
        if schedule is None:
            alpha, sigma = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        else:
            t64 = as_time(t).to(torch.float64).expand(x.shape[0]) if as_time(t).ndim == 0 else as_time(t)
            alpha, sigma = schedule.alpha(t64), schedule.sigma(t64)
        alpha, sigma = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
        var = alpha**2 * self.vars + sigma**2  # (B, K, d)
        diff = x[:, None, :] - alpha * self.means  # (B, K, d)
        log_comp = -0.5 * ((diff**2 / var) + torch.log(2 * math.pi * var)).sum(-1)  # (B, K)
        return alpha, sigma, var, diff, log_comp

    def log_prob(self, x: Tensor, t: Tensor | float = 0.0, schedule: Schedule | None = None) -> Tensor:
        """Exact log p_t(x) (B,); the data density when ``schedule`` is None."""
        *_, log_comp = self._marginal(x, t, schedule)
        return torch.logsumexp(self.log_weights + log_comp, -1)

    def posterior(self, x: Tensor, t: Tensor | float = 0.0, schedule: Schedule | None = None) -> Tensor:
        """Exact p(component | x_t) (B, K): the ideal noisy classifier."""
        *_, log_comp = self._marginal(x, t, schedule)
        return torch.softmax(self.log_weights + log_comp, -1)

    def score(self, x: Tensor, t: Tensor | float, schedule: Schedule | None = None) -> Tensor:
        """Exact grad_x log p_t(x) (B, d)."""
        _, _, var, diff, log_comp = self._marginal(x, t, schedule)
        resp = torch.softmax(self.log_weights + log_comp, -1)
        return -(resp[..., None] * diff / var).sum(1)

    def x0(self, x: Tensor, t: Tensor | float, schedule: Schedule) -> Tensor:
        """Exact E[x0 | x_t = x] (B, d): each component's Gaussian posterior mean, weighted by p(k | x_t)."""
        alpha, _, var, diff, log_comp = self._marginal(x, t, schedule)
        resp = torch.softmax(self.log_weights + log_comp, -1)
        mean_k = self.means + self.vars * alpha / var * diff  # (B, K, d)
        return (resp[..., None] * mean_k).sum(1)

    def eps(self, x: Tensor, t: Tensor | float, schedule: Schedule) -> Tensor:
        """Exact E[eps | x_t = x] = -sigma_t score (35)."""
        sigma = schedule.sigma(as_time(t).to(torch.float64))
        return -sigma.reshape(-1, 1) * self.score(x, t, schedule)

    def model(self, schedule: Schedule, prediction: str = "eps"):
        """The exact denoiser as ``model(x, t) -> prediction`` (any kind), in the dtype of x."""
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; valid: {', '.join(PREDICTIONS)}.")

        def exact(x: Tensor, t: Tensor) -> Tensor:
            if prediction == "score":
                return self.score(x, t, schedule).to(x.dtype)
            c = Point.of(schedule, as_time(t).to(torch.float64).expand(x.shape[0]))
            c_x0, c_eps = basis(prediction, c)  # prediction = c_x0 x0 + c_eps eps
            out = torch.zeros(x.shape, dtype=torch.float64)
            if not _is_zero(c_x0):
                out = out + _col(c_x0) * self.x0(x, t, schedule)
            if not _is_zero(c_eps):
                out = out + _col(c_eps) * self.eps(x, t, schedule)
            return out.to(x.dtype)

        return exact


def _is_zero(c) -> bool:
    return isinstance(c, float) and c == 0.0


def _col(c) -> Tensor | float:
    return c.reshape(-1, 1) if isinstance(c, Tensor) else c
