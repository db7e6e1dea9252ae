"""Step distillation of the text model (D1 in THEORY): a student that samples in K steps what its teacher samples in T.

The student is trained where it will be evaluated. Its K-step grid t_0 = 1 > t_1 > ... > t_K = t_end is the
one its generation config gives; the teacher runs T = m K steps on that grid refined m times (each student
interval split uniformly in log-SNR), from the same starting noise z_1, and leaves its state z_{t_k} at
every student time and its final tokens y. The student, initialised from the teacher, learns

    f_student(z_{t_k}, t_k) -> y   at every k                                                          (D1)

with the model's own losses (122)-(124) against y's table rows: each of its states maps to the end of the
teacher trajectory through it, the consistency property (a consistency model's f(x_t, t) = x_0 along one
trajectory) with the teacher's finished sample as the target instead of a bootstrapped one (so no EMA target
network is needed), and a stochastic teacher's end as a sample of the paths through z_{t_k}.
The student's inputs are built as at sampling: the log-SNR offset (C1), the sampling temperature, and
self-conditioning on its own estimate at the previous student time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .core.grids import make_grid
from .generation import condition_enhanced_time, generate_ids, sampling_grid, sampling_logit_edit
from .generation_config import GenerationConfig
from .modeling import DiffusionLMModel
from .modeling.length import past_the_end, response_lengths


def student_grid(model: DiffusionLMModel, settings: GenerationConfig, student_steps: int) -> Tensor:
    """The K + 1 decreasing times the student samples on (its generation config's grid with K steps)."""
    grid = sampling_grid(model, student_steps, settings.grid, model.config.t_eps)
    return make_grid(model.schedule, student_steps, grid, 1.0, model.config.t_eps)


def refined_grid(model: DiffusionLMModel, coarse: Tensor, factor: int) -> Tensor:
    """``coarse`` with every interval split into ``factor`` steps uniform in log-SNR (the teacher's grid)."""
    if factor < 1:
        raise ValueError(f"the teacher needs at least as many steps as the student (factor {factor}).")
    lam = model.schedule.log_snr(coarse.double())
    parts = [coarse[:1]]
    for k in range(len(coarse) - 1):
        inner = torch.linspace(float(lam[k]), float(lam[k + 1]), factor + 1, dtype=torch.float64)[1:-1]
        parts += [model.schedule.t_from_log_snr(inner).double(), coarse[k + 1 : k + 2]]
    return torch.cat(parts)


@dataclass
class Trajectories:
    """What the teacher leaves for the student: its state at each student time and its final tokens."""

    prompt_ids: Tensor  # (B, P)
    prompt_mask: Tensor  # (B, P)
    states: Tensor  # (K, B, N, D), unit scale: z_{t_k}, k = 0 .. K-1 (z_{t_0} = the starting noise)
    times: Tensor  # (K,) the student times t_0 = 1 > ... > t_{K-1}
    target_ids: Tensor  # (B, N) the teacher's response tokens


# Samplers whose callback reports every grid step, with the x0 estimate its step used (the student's output).
GRID_SAMPLERS = ("ddim", "ddpm", "dpm_solver++", "unipc")


def check_distillable(settings: GenerationConfig, student_steps: int, teacher_steps: int) -> None:
    """Raise ``ValueError`` unless the teacher's sampler steps on the grid and T is a multiple of K."""
    if settings.method not in GRID_SAMPLERS:
        raise ValueError(f"distillation needs a sampler that steps on the grid ({', '.join(GRID_SAMPLERS)}); the "
                         f"teacher's generation config says {settings.method!r}: pass a generation config with one of them.")
    if teacher_steps % student_steps:
        raise ValueError(f"teacher_steps ({teacher_steps}) must be a multiple of student_steps ({student_steps}).")


@torch.no_grad()
def teacher_trajectories(teacher: DiffusionLMModel, prompt_ids: Tensor, prompt_mask: Tensor, settings: GenerationConfig,
                         student_steps: int, teacher_steps: int, generator: torch.Generator | None = None,
                         noise: Tensor | None = None, **repeat_block: Tensor) -> Trajectories:
    """Run the teacher for ``teacher_steps`` (a multiple of ``student_steps``) on the refined student grid, from
    ``noise`` (drawn from ``generator`` if None); ``repeat_block`` (``punctuation``, ``same_word``) as in ``generate_ids``."""
    check_distillable(settings, student_steps, teacher_steps)
    factor = teacher_steps // student_steps
    coarse = student_grid(teacher, settings, student_steps)
    cfg = teacher.config
    shape = (prompt_ids.shape[0], cfg.max_response_length, cfg.embedding_dim)
    if noise is None:
        noise = float(teacher.schedule.sigma(1.0)) * torch.randn(shape, generator=generator).to(prompt_ids.device)
    states = [noise]

    def keep(info: dict) -> None:  # the state after step i sits at time grid[i + 1]
        if (info["i"] + 1) % factor == 0 and len(states) < student_steps:
            states.append(info["x"].float().clone())

    target = generate_ids(teacher, prompt_ids, prompt_mask, settings.updated(num_steps=teacher_steps, length_candidates=1),
                          grid=refined_grid(teacher, coarse, factor), generator=generator, noise=noise, callback=keep,
                          **repeat_block)
    if len(states) != student_steps:
        raise RuntimeError(f"the teacher's sampler reported {len(states) - 1} of the {student_steps - 1} student-time states.")
    return Trajectories(prompt_ids, prompt_mask, torch.stack(states), coarse[:-1].float(), target)


def distillation_loss(student: DiffusionLMModel, batch: Trajectories, settings: GenerationConfig,
                      **repeat_block: Tensor) -> Tensor:
    """(D1) the mean over the K student times of (124) between f_student(z_{t_k}, t_k) and the teacher's tokens.

    The self-conditioning input at t_k is the student's estimate at t_{k-1} as sampling builds it (temperature,
    adjacent repeats blocked (with ``repeat_block``: ``punctuation``, ``same_word``) when the settings block them, snapped to the table for
    ``self_conditioning_source="rounded"``)."""
    cfg, schedule = student.config, student.schedule
    target_rows = student.embed(batch.target_ids).float()
    past, pad_slots = None, None  # a length-conditioned student is told the length the teacher wrote (L2)
    if student.length_predictor is not None:
        past = past_the_end(response_lengths(batch.target_ids, cfg.pad_token_id), batch.target_ids.shape[1])
        pad_slots = {"mask": past, "exact": True}
    edit = sampling_logit_edit(student, settings, pad_slots, **repeat_block)
    previous, total = None, 0.0
    for z, t in zip(batch.states, batch.times):
        t_model = condition_enhanced_time(schedule, torch.full((z.shape[0],), float(t), device=z.device),
                                          settings.log_snr_offset)  # (C1), as at sampling
        x0_pred, logits = student.predict(batch.prompt_ids, batch.prompt_mask, z, t_model, previous, past=past)
        sampled = x0_pred  # the loss reads the plain estimate; the next step, the one sampling forms
        if cfg.x0_parameterization == "interpolated":
            shown = logits.detach() if edit is None else edit(logits.detach().clone())  # as sampling edits them
            sampled = student.interpolate(shown, settings.temperature)
        if cfg.self_conditioning_source == "rounded":
            sampled = student.clamp_to_table(sampled.detach())
        loss_x0 = (x0_pred.float() - target_rows).pow(2).mean()  # (122)
        loss_round = F.cross_entropy(logits.transpose(1, 2).float(), batch.target_ids)  # (123)
        total = total + cfg.lambda_x0 * loss_x0 + cfg.lambda_round * loss_round  # (124)
        previous = sampled.detach() if cfg.self_conditioning else None
    return total / len(batch.times)
