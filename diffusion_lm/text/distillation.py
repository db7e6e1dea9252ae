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
self-conditioning on its own estimate at the previous student time. A length-conditioned student's classifier
learns the length the teacher wrote.

A one-step student can learn the teacher's whole call instead (D2, ``teacher_steps=None``): the teacher samples
exactly as its generation config says (its steps, its grid, its length beam of k candidates) from z_1, and the
student learns that call's chosen response from z_1 at t = 1 and its chosen length with its classifier, so that
one evaluation and one candidate say what the teacher's k candidates and T steps said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.grids import make_grid
from .batching import PairBatch
from .generation import Controls, end_time, generate_ids, sampling_grid
from .generation_config import GenerationConfig
from .length import response_lengths
from .repeats import RepeatBlock
from .rollout import Rollout

if TYPE_CHECKING:
    from .model import DiffusionLMModel


def student_grid(model: "DiffusionLMModel", settings: GenerationConfig, student_steps: int) -> Tensor:
    """The K + 1 decreasing times the student samples on (its generation config's grid with K steps)."""
    t_end = end_time(model, settings)
    grid = sampling_grid(model, student_steps, settings.grid, t_end)
    return make_grid(model.schedule, student_steps, grid, 1.0, t_end)


def refined_grid(model: "DiffusionLMModel", coarse: Tensor, factor: int) -> Tensor:
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


def check_distillable(settings: GenerationConfig, student_steps: int, teacher_steps: int | None) -> None:
    """Raise ``ValueError`` unless the teacher's sampler steps on the grid and T is a multiple of K, or, for the
    teacher's own call (``teacher_steps`` None, D2), unless the student takes one step."""
    if teacher_steps is None:
        if student_steps != 1:
            raise ValueError(f"the teacher's own call (no teacher steps given) is distilled into a one-step student; "
                             f"for student_steps={student_steps} give teacher_steps, a multiple of it.")
        return
    if settings.method not in GRID_SAMPLERS:
        raise ValueError(f"distillation needs a sampler that steps on the grid ({', '.join(GRID_SAMPLERS)}); the "
                         f"teacher's generation config says {settings.method!r}: pass a generation config with one of "
                         "them.")
    if teacher_steps % student_steps:
        raise ValueError(f"teacher_steps ({teacher_steps}) must be a multiple of student_steps ({student_steps}).")


@torch.no_grad()
def teacher_trajectories(teacher: "DiffusionLMModel", batch: PairBatch, settings: GenerationConfig, student_steps: int,
                         teacher_steps: int | None, generator: torch.Generator | None = None,
                         noise: Tensor | None = None, repeat_block: RepeatBlock | None = None) -> Trajectories:
    """Run the teacher on the prompts of ``batch`` for ``teacher_steps`` (a multiple of ``student_steps``) on the
    refined student grid, from ``noise`` (drawn from ``generator`` if None); ``repeat_block`` as ``Controls`` takes
    it. ``teacher_steps`` None: the teacher's own call as ``settings`` say (its steps, grid and length candidates),
    for a one-step student (D2)."""
    check_distillable(settings, student_steps, teacher_steps)
    cfg = teacher.config
    if cfg.position_noise_skew > 0 and teacher_steps is not None:
        raise ValueError("step distillation (D1) takes the teacher's states at one time per response; a model "
                         "trained with position_noise_skew > 0 (A1) has a time per slot: distil its own call into "
                         "one step instead (leave teacher_steps unset, D2).")
    prompt_ids, prompt_mask = batch.prompt_ids, batch.prompt_mask
    shape = (prompt_ids.shape[0], cfg.max_response_length, cfg.embedding_dim)
    if noise is None:
        noise = float(teacher.schedule.sigma(1.0)) * torch.randn(shape, generator=generator).to(prompt_ids.device)
    if teacher_steps is None:  # (D2) the call as a user makes it; the student needs only its start and its end
        target = generate_ids(teacher, PairBatch(prompt_ids, prompt_mask), settings,
                              Controls(repeat_block=repeat_block), generator=generator, noise=noise)
        return Trajectories(prompt_ids, prompt_mask, noise[None], torch.ones(1), target)
    factor = teacher_steps // student_steps
    coarse = student_grid(teacher, settings, student_steps)
    states = [noise]

    def keep(info: dict) -> None:  # the state after step i sits at time grid[i + 1]
        if (info["i"] + 1) % factor == 0 and len(states) < student_steps:
            states.append(info["x"].float().clone())

    teacher_settings = settings.updated(num_steps=teacher_steps, length_candidates=1,
                                        grid=refined_grid(teacher, coarse, factor))
    target = generate_ids(teacher, PairBatch(prompt_ids, prompt_mask), teacher_settings,
                          Controls(repeat_block=repeat_block), generator=generator, noise=noise, callback=keep)
    if len(states) != student_steps:
        raise RuntimeError(f"the teacher's sampler reported {len(states) - 1} of the {student_steps - 1} student-time "
                           "states.")
    return Trajectories(prompt_ids, prompt_mask, torch.stack(states), coarse[:-1].float(), target)


def distillation_loss(student: "DiffusionLMModel", batch: Trajectories, settings: GenerationConfig,
                      repeat_block: RepeatBlock | None = None) -> Tensor:
    """(D1) the mean over the K student times of (124) between f_student(z_{t_k}, t_k) and the teacher's tokens.

    The student reads each state at the time sampling tells it (C1); its self-conditioning input at t_k is its
    estimate at t_{k-1} as its own rollout forms it (``Rollout.estimate``: holds, temperature). A length-conditioned
    student is told the length the teacher wrote (L2), and its classifier learns it: plus the cross-entropy of
    p_s(n | x_p) at that length (D2)."""
    cfg, objective = student.config, student.config.training_objective
    target_rows = student.embed(batch.target_ids).float()
    lengths = response_lengths(batch.target_ids, cfg.pad_token_id) if student.length_predictor is not None else None
    rollout = Rollout(student, settings, batch.prompt_ids, batch.prompt_mask, lengths=lengths,
                      repeat_block=repeat_block)
    previous, total = None, 0.0
    for z, t in zip(batch.states, batch.times):
        t_model = rollout.model_time(torch.full((z.shape[0],), float(t), device=z.device))  # (C1), as at sampling
        x0_pred, logits = student.predict(batch.prompt_ids, batch.prompt_mask, z, t_model, previous, past=rollout.past)
        # the loss reads the plain estimate; the next step reads this one, as the student's own rollout forms it
        held = rollout.sharpened(logits.detach().clone())
        sampled = student.self_condition_input(student.interpolate(held), held)
        loss_x0 = (x0_pred.float() - target_rows).pow(2).mean()  # (122)
        loss_round = F.cross_entropy(logits.transpose(1, 2).float(), batch.target_ids)  # (123)
        total = total + objective.lambda_x0 * loss_x0 + objective.lambda_round * loss_round  # (124)
        previous = sampled.detach() if cfg.self_conditioning else None
    total = total / len(batch.times)
    if lengths is None:
        return total
    return total + F.cross_entropy(student.length_logits(batch.prompt_ids, batch.prompt_mask).float(), lengths)  # (D2)
