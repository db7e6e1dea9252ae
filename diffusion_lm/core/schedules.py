"""Noise schedules: the Gaussian path ``x_t = alpha_t x0 + sigma_t eps`` on t in [0, 1] (THEORY section 1).

Every method takes t as a tensor (or number), computes in float64 and returns a tensor: float64
for float64 or Python inputs, float32 for float32/float16/bfloat16 inputs. The log-SNR is clipped
to ``[-LOG_SNR_LIMIT, LOG_SNR_LIMIT]`` so that t = 0 and t = 1 stay finite where it is infinite
in exact arithmetic (sigma_0 = 0 or alpha_1 = 0).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from ._checks import as_time, output_dtype

LOG_SNR_LIMIT = 30.0
_TINY = 1e-30

# iDDPM clips discrete betas at 0.999 with 1000 steps; the continuous rate with the same decay per step.
DEFAULT_MAX_BETA = 1000.0 * math.log(1000.0)


class Schedule(ABC):
    """A differentiable schedule (alpha_t, sigma_t) on t in [0, 1] with its SDE coefficients."""

    # Subclasses implement these on float64 tensors already checked to lie in [0, 1].
    @abstractmethod
    def _alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _sigma(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _drift(self, t: Tensor) -> Tensor:
        """f(t) = d log(alpha_t) / dt."""

    @abstractmethod
    def _diffusion_sq(self, t: Tensor) -> Tensor:
        """g(t)^2 = d(sigma_t^2)/dt - 2 f(t) sigma_t^2."""

    @abstractmethod
    def _sigma_dot(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _t_from_log_snr(self, lam: Tensor) -> Tensor: ...

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Plain-data description; ``schedule_from_config`` rebuilds the schedule from it."""

    def _log_snr(self, t: Tensor) -> Tensor:
        return torch.log(self._alpha(t)) - torch.log(self._sigma(t))

    def _call(self, fn, t: Tensor | float) -> Tensor:
        return fn(as_time(t)).to(output_dtype(t))

    def alpha(self, t: Tensor | float) -> Tensor:
        """Signal scale alpha_t of the kernel (2)."""
        return self._call(self._alpha, t)

    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise scale sigma_t of the kernel (2)."""
        return self._call(self._sigma, t)

    def log_snr(self, t: Tensor | float) -> Tensor:
        """lambda_t = log(alpha_t / sigma_t)  (48), clipped to +-LOG_SNR_LIMIT."""
        return self._call(lambda u: self._log_snr(u).clamp(-LOG_SNR_LIMIT, LOG_SNR_LIMIT), t)

    def t_from_log_snr(self, lam: Tensor | float) -> Tensor:
        """The exact inverse of ``log_snr``; log-SNRs beyond the schedule's range map to t = 0 or 1."""
        lam64 = lam.to(torch.float64) if isinstance(lam, Tensor) else torch.tensor(lam, dtype=torch.float64, device="cpu")
        if torch.isnan(lam64).any():
            raise ValueError("t_from_log_snr got NaN; pass finite log-SNR values.")
        lam64 = lam64.clamp(-LOG_SNR_LIMIT, LOG_SNR_LIMIT)
        return self._t_from_log_snr(lam64).clamp(0.0, 1.0).to(output_dtype(lam))

    def drift_coef(self, t: Tensor | float) -> Tensor:
        """f(t) of the forward SDE (22): d log(alpha_t) / dt  (1)."""
        return self._call(self._drift, t)

    def diffusion_sq(self, t: Tensor | float) -> Tensor:
        """g(t)^2 of the forward SDE (22): d(sigma_t^2)/dt - 2 f(t) sigma_t^2  (1)."""
        return self._call(self._diffusion_sq, t)

    def _alpha_dot(self, t: Tensor) -> Tensor:
        return self._drift(t) * self._alpha(t)

    def alpha_dot(self, t: Tensor | float) -> Tensor:
        """d alpha_t / dt = f(t) alpha_t."""
        return self._call(self._alpha_dot, t)

    def sigma_dot(self, t: Tensor | float) -> Tensor:
        """d sigma_t / dt (infinite where sigma_t = 0 for VP schedules; returned large but finite)."""
        return self._call(self._sigma_dot, t)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k not in ("type", "betas"))
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- variance preserving


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
        self._theta0 = self._theta(torch.tensor(0.0, dtype=torch.float64))

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
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 1 or not torch.all((betas > 0) & (betas < 1)):
            raise ValueError("from_betas needs a non-empty 1-D sequence of betas, each in (0, 1).")
        self.betas = betas
        self.n = betas.numel()
        # log alpha at the knots: 1/2 log alphabar_k, alphabar_k = prod_{j<=k} (1 - beta_j)
        self.knots = torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * torch.cumsum(torch.log1p(-betas), 0)])

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


class VPSchedule(Schedule):
    """Variance preserving: alpha_t^2 + sigma_t^2 = 1, so f = -beta/2 and g^2 = beta.

    Build one with ``linear``, ``cosine``, ``sqrt`` or ``from_betas``. Schedules whose rate beta(t)
    diverges at t = 1 (cosine, sqrt) cap it at ``max_beta`` from the time it is reached, the
    continuous form of iDDPM's beta clip: alpha_t follows the formula up to that time, then decays
    at the constant rate, so alpha_1 > 0 and the inverse log-SNR stays exact and closed form.
    """

    def __init__(self, profile: _Profile, max_beta: float | None = None):
        self.profile = profile
        self.max_beta = None if max_beta is None else float(max_beta)
        self.t_cap = 1.0 if max_beta is None else profile.t_at_beta(float(max_beta))
        self._log_alpha_cap = profile.log_alpha(torch.tensor(self.t_cap, dtype=torch.float64))

    @classmethod
    def linear(cls, beta_min: float = 0.1, beta_max: float = 20.0) -> "VPSchedule":
        """Linear beta(t) (score-SDE / DDPM limit): log alpha_t = -beta_min t/2 - (beta_max - beta_min) t^2/4."""
        return cls(_LinearBeta(beta_min, beta_max))

    @classmethod
    def cosine(cls, s: float = 0.008, max_beta: float = DEFAULT_MAX_BETA) -> "VPSchedule":
        """iDDPM cosine: alpha_t = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s)), beta capped at ``max_beta``."""
        return cls(_Cosine(s), max_beta)

    @classmethod
    def sqrt(cls, s: float = 1e-4, max_beta: float = DEFAULT_MAX_BETA) -> "VPSchedule":
        """Diffusion-LM / DiffuSeq sqrt schedule alpha_t^2 = 1 - sqrt(t + s), beta capped at ``max_beta``."""
        return cls(_Sqrt(s), max_beta)

    @classmethod
    def from_betas(cls, betas: Tensor | list[float]) -> "VPSchedule":
        """A discrete DDPM schedule as a continuous one: alpha_{k/N}^2 = alphabar_k exactly."""
        return cls(_Discrete(torch.as_tensor(betas)))

    def _log_alpha(self, t: Tensor) -> Tensor:
        tail = self._log_alpha_cap - (self.max_beta or 0.0) / 2 * (t - self.t_cap)
        return torch.where(t <= self.t_cap, self.profile.log_alpha(torch.clamp(t, max=self.t_cap)), tail)

    def _beta(self, t: Tensor) -> Tensor:
        capped = torch.full_like(t, self.max_beta or 0.0)
        return torch.where(t <= self.t_cap, self.profile.beta(torch.clamp(t, max=self.t_cap)), capped)

    def _alpha(self, t):
        return torch.exp(self._log_alpha(t))

    def _sigma(self, t):
        return torch.sqrt(-torch.expm1(2 * self._log_alpha(t)))

    def _log_snr(self, t):
        la = self._log_alpha(t)
        return la - 0.5 * torch.log(-torch.expm1(2 * la))

    def _drift(self, t):
        return -0.5 * self._beta(t)

    def _diffusion_sq(self, t):
        return self._beta(t)

    def _sigma_dot(self, t):
        # sigma^2 = 1 - alpha^2  =>  sigma' = alpha^2 beta / (2 sigma)
        return self._alpha(t) ** 2 * self._beta(t) / (2 * self._sigma(t).clamp_min(_TINY))

    def _t_from_log_snr(self, lam):
        la = -0.5 * torch.nn.functional.softplus(-2 * lam)  # alpha^2 = sigmoid(2 lambda)
        in_tail = la < self._log_alpha_cap
        t_tail = self.t_cap + (self._log_alpha_cap - la) * 2 / (self.max_beta or 1.0)
        return torch.where(in_tail, t_tail, self.profile.t_of_log_alpha(torch.maximum(la, self._log_alpha_cap)))

    def config(self):
        cfg = {"type": "vp", "profile": self.profile.name, **self.profile.params()}
        if self.max_beta is not None:
            cfg["max_beta"] = self.max_beta
        return cfg


# --------------------------------------------------------------------------- variance exploding and flow


class VESchedule(Schedule):
    """Variance exploding (score-SDE): alpha_t = 1, sigma_t = sigma_min (sigma_max / sigma_min)^t."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(sigma_max / sigma_min)

    def _alpha(self, t):
        return torch.ones_like(t)

    def _sigma(self, t):
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def _drift(self, t):
        return torch.zeros_like(t)

    def _diffusion_sq(self, t):
        return 2 * self._sigma(t) ** 2 * self._log_ratio

    def _sigma_dot(self, t):
        return self._sigma(t) * self._log_ratio

    def _t_from_log_snr(self, lam):
        return (-lam - math.log(self.sigma_min)) / self._log_ratio

    def config(self):
        return {"type": "ve", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class FlowSchedule(Schedule):
    """Rectified flow / flow matching path: alpha_t = 1 - t, sigma_t = t.

    f and g^2 diverge at t = 1 (alpha_1 = 0); they are evaluated with 1 - t floored at 1e-12.
    """

    _FLOOR = 1e-12

    def _alpha(self, t):
        return 1 - t

    def _sigma(self, t):
        return t.clone()

    def _drift(self, t):
        return -1 / (1 - t).clamp_min(self._FLOOR)

    def _diffusion_sq(self, t):
        return 2 * t / (1 - t).clamp_min(self._FLOOR)

    def _alpha_dot(self, t):
        return -torch.ones_like(t)

    def _sigma_dot(self, t):
        return torch.ones_like(t)

    def _t_from_log_snr(self, lam):
        return torch.sigmoid(-lam)

    def config(self):
        return {"type": "flow"}


def schedule_from_config(config: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from ``Schedule.config()``."""
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if kind == "ve":
        return VESchedule(**cfg)
    if kind == "flow":
        return FlowSchedule()
    if kind == "vp":
        profile = cfg.pop("profile", None)
        builders = {"linear": VPSchedule.linear, "cosine": VPSchedule.cosine, "sqrt": VPSchedule.sqrt, "discrete": VPSchedule.from_betas}
        if profile not in builders:
            raise ValueError(f"unknown VP profile {profile!r}; valid: {', '.join(builders)}.")
        return builders[profile](**cfg)
    raise ValueError(f"unknown schedule type {kind!r}; valid: vp, ve, flow (as written by Schedule.config()).")
