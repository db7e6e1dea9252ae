"""Generation for the text model: Algorithm 2 and every other core sampler through one entry point.

The response embeddings are sampled at unit scale (x / sigma_E), so the start ``z ~ N(0, I)`` is
(125) and the model is a core ``model(x, t) -> x0`` callable: ``method="ddim"`` with ``eta`` is the
DDIM-stochastic rollout of (126)-(130), and ``dpm_solver++``, ``unipc``, ``heun``, ... work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .core import classifier_free, sample
from .core.sampling import METHODS
from .modeling import DiffusionLMModel


def _x0_model(
    model: DiffusionLMModel, prompt_ids: Tensor, prompt_mask: Tensor, clamp: bool
) -> Callable[[Tensor, Tensor], Tensor]:
    """f_theta as a core model callable. With self-conditioning it feeds each call the previous
    call's x0_hat, so a fresh closure is made for every generation run."""
    previous: list[Tensor | None] = [None]

    def x0_hat(z: Tensor, t: Tensor) -> Tensor:
        out = model.denoise(prompt_ids, prompt_mask, z, t.float(), previous[0])  # (126)
        if model.config.self_conditioning:
            previous[0] = out
        return model.clamp_to_table(out) if clamp else out

    return x0_hat


@torch.no_grad()
def generate_ids(
    model: DiffusionLMModel,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    *,
    num_steps: int = 20,
    method: str = "ddim",
    eta: float = 0.0,
    guidance_scale: float = 1.0,
    clamp: bool = False,
    grid: str | Tensor = "logsnr",
    order: int | None = None,
    t_end: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Response token ids (B, N) for prompts (B, P): sample the response embeddings, then round (121).

    ``guidance_scale`` s is classifier-free guidance in the usual convention: 1 is the conditional
    model, s > 1 extrapolates away from the unconditional one, i.e. (62) with w = s - 1. It needs a
    model trained with ``prompt_dropout > 0``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid choices are: {', '.join(METHODS)}.")
    if guidance_scale != 1.0 and model.config.prompt_dropout <= 0:
        raise ValueError(
            f"guidance_scale={guidance_scale} needs classifier-free guidance, but this model was trained "
            "without prompt dropout (config.prompt_dropout = 0); use guidance_scale=1.0 or train with prompt_dropout > 0."
        )
    cfg, schedule = model.config, model.schedule
    b = prompt_ids.shape[0]
    device = prompt_ids.device
    dtype = next(model.parameters()).dtype
    x0_fn = _x0_model(model, prompt_ids, prompt_mask, clamp)
    if guidance_scale != 1.0:
        unconditional = _x0_model(model, prompt_ids, torch.zeros_like(prompt_mask), clamp)
        x0_fn = classifier_free(x0_fn, unconditional, guidance_scale - 1.0)  # (62), w = s - 1
    gen_device = generator.device if generator is not None else device
    shape = (b, cfg.max_response_length, cfg.embedding_dim)
    z = float(schedule.sigma(1.0)) * torch.randn(shape, generator=generator, device=gen_device).to(device, torch.float32)
    last = {}
    z = sample(
        lambda x, t: x0_fn(x.to(dtype), t).float(), z, schedule, method=method, steps=num_steps,
        prediction="x0", t_end=t_end, eta=eta, grid=grid, order=order, generator=generator,
        callback=lambda info: last.update(x0=info["x0"]) if info["x0"] is not None else None, progress=progress,
    )
    x0 = last.get("x0")
    if x0 is None:  # samplers that report no x0 (euler, heun, rk45, SDE ones): one more evaluation at t_end
        x0 = x0_fn(z.to(dtype), torch.full((b,), t_end, device=device)).float()
    return model.round(x0)
