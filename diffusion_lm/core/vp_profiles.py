"""The shapes of log alpha_t that VP schedules are built from: linear beta, cosine, sqrt, and a discrete DDPM chain.

Each profile gives log alpha_t, its rate beta(t) = -2 d log(alpha_t)/dt (THEORY (1): f = -beta/2, g^2 = beta)
and the inverse t(log alpha) in closed form; ``VPSchedule`` adds the beta cap and the log-SNR.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor


class _Profile(ABC):
    """log alpha_t of a VP schedule, its rate beta(t) = -2 d log(alpha_t)/dt and the inverse of log alpha."""

    name: str

    @abstractmethod
    def log_alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def beta(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def t_of_log_alpha(self, log_alpha: Tensor) -> Tensor: ...

    def t_at_beta(self, max_beta: float) -> float:
        """Last time at which beta(t) <= max_beta before it exceeds it for good (1.0 if never)."""
        return 1.0

    def params(self) -> dict[str, Any]:
        return {}


class _LinearBeta(_Profile):
    name = "linear"

    def __init__(self, beta_min: float, beta_max: float):
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}.")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def log_alpha(self, t):
        return -(self.beta_min * t / 2 + (self.beta_max - self.beta_min) * t**2 / 4)

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def t_of_log_alpha(self, la):
        # root of (b1 - b0)/4 t^2 + b0/2 t + la = 0, in the cancellation-free form
        b0, db = self.beta_min, self.beta_max - self.beta_min
        return -2 * la / (b0 / 2 + torch.sqrt(b0**2 / 4 - db * la))

    def t_at_beta(self, max_beta):
        if max_beta >= self.beta_max:
            return 1.0
        return (max_beta - self.beta_min) / (self.beta_max - self.beta_min)

    def params(self):
        return {"beta_min": self.beta_min, "beta_max": self.beta_max}


class _Cosine(_Profile):
    name = "cosine"

    def __init__(self, s: float):
        if s <= 0:
            raise ValueError(f"the cosine offset s must be > 0, got {s}.")
        self.s = float(s)
        self._theta0 = self._theta(torch.tensor(0.0, dtype=torch.float64, device="cpu"))

    def _theta(self, t):
        return math.pi / 2 * (t + self.s) / (1 + self.s)

    def log_alpha(self, t):
        # cos(theta0 + d) / cos(theta0) = 1 - 2 sin^2(d/2) - tan(theta0) sin(d): no cancellation near t = 0
        d = math.pi / 2 * t / (1 + self.s)
        return torch.log1p(-2 * torch.sin(d / 2) ** 2 - torch.tan(self._theta0) * torch.sin(d))

    def beta(self, t):
        return math.pi / (1 + self.s) * torch.tan(self._theta(t))

    def t_of_log_alpha(self, la):
        c0, s0 = torch.cos(self._theta0), torch.sin(self._theta0)
        cos_theta = torch.exp(la) * c0
        # near t = 0 arccos loses the digits that 1 - alpha carries: use sin^2 = s0^2 - expm1(2 la) c0^2
        sin_theta = torch.sqrt((s0**2 - torch.expm1(2 * la) * c0**2).clamp(0.0, 1.0))
        theta = torch.where(cos_theta > math.sqrt(0.5), torch.arcsin(sin_theta), torch.arccos(cos_theta.clamp(max=1.0)))
        return theta * 2 * (1 + self.s) / math.pi - self.s

    def t_at_beta(self, max_beta):
        theta = math.atan(max_beta * (1 + self.s) / math.pi)
        return min(1.0, theta * 2 * (1 + self.s) / math.pi - self.s)

    def params(self):
        return {"s": self.s}


class _Sqrt(_Profile):
    """Diffusion-LM's schedule alpha_t^2 = 1 - sqrt(t + s)."""

    name = "sqrt"

    def __init__(self, s: float):
        if not 0 < s < 1:
            raise ValueError(f"the sqrt offset s must lie in (0, 1), got {s}.")
        self.s = float(s)

    def log_alpha(self, t):
        return 0.5 * torch.log1p(-torch.sqrt(t + self.s))

    def beta(self, t):
        u = torch.sqrt(t + self.s)
        return 1 / (2 * u * (1 - u))

    def t_of_log_alpha(self, la):
        u = -torch.expm1(2 * la)
        return u**2 - self.s

    def t_at_beta(self, max_beta):
        if max_beta <= 2.0:
            raise ValueError(f"max_beta must exceed 2 for the sqrt schedule, got {max_beta}.")
        u = (1 + math.sqrt(1 - 2 / max_beta)) / 2
        return min(1.0, u * u - self.s)

    def params(self):
        return {"s": self.s}


class _Discrete(_Profile):
    """A DDPM chain with betas beta_1..beta_N matched at t_k = k / N (64)-(70); log alpha linear in between."""

    name = "discrete"

    def __init__(self, betas: Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64, device="cpu").flatten()
        if betas.numel() < 1 or not torch.all((betas > 0) & (betas < 1)):
            raise ValueError("from_betas needs a non-empty 1-D sequence of betas, each in (0, 1).")
        self.betas = betas
        self.n = betas.numel()
        # log alpha at the knots: 1/2 log alphabar_k, alphabar_k = prod_{j<=k} (1 - beta_j)
        self.knots = torch.cat([torch.zeros(1, dtype=torch.float64, device="cpu"),
                                0.5 * torch.cumsum(torch.log1p(-betas), 0)])

    def _segment(self, t):
        k = torch.clamp(torch.ceil(t * self.n).long(), 1, self.n)  # t in ((k-1)/N, k/N]
        return k

    def log_alpha(self, t):
        k = self._segment(t)
        frac = t * self.n - (k - 1)
        lo, hi = self.knots.to(t.device)[k - 1], self.knots.to(t.device)[k]
        return lo + frac * (hi - lo)

    def beta(self, t):
        # 1 - beta_k = exp(-int beta(s) ds) over the k-th interval
        k = self._segment(t)
        return -self.n * torch.log1p(-self.betas.to(t.device)[k - 1])

    def t_of_log_alpha(self, la):
        knots = self.knots.to(la.device)
        k = torch.searchsorted(-knots, -la.contiguous()).clamp(1, self.n)  # knots[k-1] >= la >= knots[k]
        lo, hi = knots[k - 1], knots[k]
        return ((k - 1) + (la - lo) / (hi - lo)) / self.n

    def params(self):
        return {"betas": self.betas.tolist()}
