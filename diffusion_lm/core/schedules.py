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

from .checks import as_time, output_dtype
from .vp_profiles import _Cosine, _Discrete, _LinearBeta, _Profile, _Sqrt

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
        lam64 = (lam.to(torch.float64) if isinstance(lam, Tensor)
                 else torch.tensor(lam, dtype=torch.float64, device="cpu"))
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


class VPSchedule(Schedule):
    """Variance preserving: alpha_t^2 + sigma_t^2 = 1, so f = -beta/2 and g^2 = beta.

    Build one with ``linear``, ``cosine``, ``sqrt`` or ``from_betas``. Schedules whose rate beta(t)
    diverges at t = 1 (cosine, sqrt) cap it at ``max_beta`` from the time it is reached, the
    continuous form of iDDPM's beta clip: alpha_t follows the formula up to that time, then decays
    at the constant rate, so alpha_1 > 0 and the inverse log-SNR stays exact and closed form.
    """

    def __init__(self, profile: _Profile, max_beta: float | None = None, log_snr_shift: float = 0.0):
        if not math.isfinite(log_snr_shift):
            raise ValueError(f"log_snr_shift must be a finite number, got {log_snr_shift}.")
        self.profile = profile
        self.log_snr_shift = float(log_snr_shift)
        self.max_beta = None if max_beta is None else float(max_beta)
        self.t_cap = 1.0 if max_beta is None else profile.t_at_beta(float(max_beta))
        self._log_alpha_cap = profile.log_alpha(torch.tensor(self.t_cap, dtype=torch.float64, device="cpu"))

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

    def shifted(self, log_snr_shift: float) -> "VPSchedule":
        """The same schedule with lambda_t moved by ``log_snr_shift`` (S1): a negative shift adds noise at every t.

        (S1) ``lambda'_t = lambda_t + s``, ``alpha'^2_t = sigmoid(2 lambda'_t)``: the path of data scaled by
        e^s (Chen 2023's input scaling; Difformer's noise factor F = e^-s), as a VP schedule in its own right.
        """
        return VPSchedule(self.profile, self.max_beta, self.log_snr_shift + float(log_snr_shift))

    def _base_log_alpha(self, t: Tensor) -> Tensor:
        tail = self._log_alpha_cap - (self.max_beta or 0.0) / 2 * (t - self.t_cap)
        return torch.where(t <= self.t_cap, self.profile.log_alpha(torch.clamp(t, max=self.t_cap)), tail)

    def _base_beta(self, t: Tensor) -> Tensor:
        capped = torch.full_like(t, self.max_beta or 0.0)
        return torch.where(t <= self.t_cap, self.profile.beta(torch.clamp(t, max=self.t_cap)), capped)

    def _log_alpha(self, t: Tensor) -> Tensor:
        la = self._base_log_alpha(t)
        if self.log_snr_shift == 0.0:
            return la
        lam = la - 0.5 * torch.log(-torch.expm1(2 * la)) + self.log_snr_shift  # (S1)
        return -0.5 * torch.nn.functional.softplus(-2 * lam)

    def _beta(self, t: Tensor) -> Tensor:
        beta = self._base_beta(t)
        if self.log_snr_shift == 0.0:
            return beta
        # beta = -2 sigma^2 d lambda/dt and d lambda/dt does not depend on the shift: scale by sigma^2 / sigma_base^2
        var_base = -torch.expm1(2 * self._base_log_alpha(t))
        var = -torch.expm1(2 * self._log_alpha(t))
        return beta * var / var_base.clamp_min(_TINY)

    def _alpha(self, t):
        return torch.exp(self._log_alpha(t))

    def _sigma(self, t):
        return torch.sqrt(-torch.expm1(2 * self._log_alpha(t)))

    def _log_snr(self, t):
        la = self._base_log_alpha(t)
        return la - 0.5 * torch.log(-torch.expm1(2 * la)) + self.log_snr_shift

    def _drift(self, t):
        return -0.5 * self._beta(t)

    def _diffusion_sq(self, t):
        return self._beta(t)

    def _sigma_dot(self, t):
        # sigma^2 = 1 - alpha^2  =>  sigma' = alpha^2 beta / (2 sigma)
        return self._alpha(t) ** 2 * self._beta(t) / (2 * self._sigma(t).clamp_min(_TINY))

    def _t_from_log_snr(self, lam):
        lam = lam - self.log_snr_shift  # (S1)
        la = -0.5 * torch.nn.functional.softplus(-2 * lam)  # alpha^2 = sigmoid(2 lambda)
        in_tail = la < self._log_alpha_cap
        t_tail = self.t_cap + (self._log_alpha_cap - la) * 2 / (self.max_beta or 1.0)
        return torch.where(in_tail, t_tail, self.profile.t_of_log_alpha(torch.maximum(la, self._log_alpha_cap)))

    def config(self):
        cfg = {"type": "vp", "profile": self.profile.name, **self.profile.params()}
        if self.max_beta is not None:
            cfg["max_beta"] = self.max_beta
        if self.log_snr_shift != 0.0:
            cfg["log_snr_shift"] = self.log_snr_shift
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
        shift = cfg.pop("log_snr_shift", 0.0)
        builders = {"linear": VPSchedule.linear, "cosine": VPSchedule.cosine, "sqrt": VPSchedule.sqrt,
                    "discrete": VPSchedule.from_betas}
        if profile not in builders:
            raise ValueError(f"unknown VP profile {profile!r}; valid: {', '.join(builders)}.")
        schedule = builders[profile](**cfg)
        return schedule.shifted(shift) if shift else schedule
    raise ValueError(f"unknown schedule type {kind!r}; valid: vp, ve, flow (as written by Schedule.config()).")
