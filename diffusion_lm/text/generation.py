"""Generation for the text model: Algorithm 2 and every other core sampler through one entry point, ``generate_ids``.

The response embeddings are sampled at unit scale (x / sigma_E), so the start ``z ~ N(0, I)`` is (125) and a
:class:`Rollout` is a core ``model(x, t) -> x0`` callable: ``method="ddim"`` with ``eta`` is the DDIM-stochastic
rollout of (126)-(130), and ``dpm_solver++``, ``unipc``, ``heun``, ... work unchanged. A length-conditioned model
(L2) decides the length first; with ``length_candidates`` k > 1 it rolls out its k most likely lengths in one batch
and keeps the response it rates most likely (Mask-Predict's length beam).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..core import classifier_free, classifier_guidance, guidance_weight, sample
from ..core.grids import make_grid
from ..core.slot_ddim import ddim_per_slot
from .batching import PairBatch
from .generation_config import GenerationConfig
from .repeats import RepeatBlock
from .rollout import Rollout
from .slot_times import slot_fractions, slot_grid

if TYPE_CHECKING:
    from .model import DiffusionLMModel


@dataclass
class Controls:
    """What a call fixes beside the sampling settings, one row per prompt.

    Args:
        lengths: (B,) for a length-conditioned model (L2): write exactly this many tokens.
        response_ids, given: (B, N) an infilling template (F1): ``given`` True at the slots whose tokens
            ``response_ids`` fixes; the rollout writes the others around them (``templates.encode_template``).
        classifier, classes, classifier_scale: classifier guidance (61) towards ``classes`` (B,) with a
            ``ResponseClassifier`` trained on this model, at weight ``classifier_scale`` (0 = off).
        repeat_block: what ``block_adjacent_repeats`` reads of the tokenizer (the pipeline passes its own).
    """

    lengths: Tensor | None = None
    response_ids: Tensor | None = None
    given: Tensor | None = None
    classifier: Any = None
    classes: Tensor | None = None
    classifier_scale: float = 0.0
    repeat_block: RepeatBlock | None = None


def sampling_grid(model: "DiffusionLMModel", num_steps: int, grid: str | Tensor | None, t_end: float) -> str | Tensor:
    """The grid a sampler runs on: ``warped`` (and ``None`` for a time-warped model) becomes explicit times."""
    if grid is None:
        grid = "warped" if model.time_warp is not None else "logsnr"
    if isinstance(grid, str) and grid == "warped":
        if model.time_warp is None:
            raise ValueError("grid='warped' needs a model trained with time_warping=True; use 'logsnr' or 'time'.")
        return model.time_warp.grid(num_steps, 1.0, t_end)
    return grid


def end_time(model: "DiffusionLMModel", settings: GenerationConfig) -> float:
    """Where a rollout ends: the settings' ``t_end``, else the lowest noise level the network was trained on."""
    return model.config.training_objective.t_eps if settings.t_end is None else settings.t_end


@torch.no_grad()
def generate_ids(
    model: "DiffusionLMModel",
    batch: PairBatch,
    config: GenerationConfig | None = None,
    controls: Controls | None = None,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
) -> Tensor:
    """Response token ids (B, N) for the prompts of ``batch`` (B, P): sample the response embeddings, then round (121).

    ``config`` says how to sample (its defaults if None); ``controls`` what the call fixes per prompt (lengths, an
    infilling template, classifier guidance). ``guidance_scale`` s is classifier-free guidance in the usual
    convention: 1 is the conditional model, s > 1 extrapolates away from the unconditional one, i.e. (62) with
    w = s - 1; it needs a model trained with prompt dropout. ``noise`` (B, N, D) is the starting state z_1 (unit
    scale, (125)) instead of a draw from ``generator``: the same noise gives the same rollout. ``callback`` is called
    after every step with ``{"i", "t", "x", "x0"}`` (t the time the step reached, x the state there, x0 the estimate
    the step used at unit scale, what ``rounding_logits`` takes; None for samplers that report none; for a
    ``position_noise_skew`` model (A1) t is the progress s and ``slot_t`` (B, N) each slot's time).

    A length-conditioned model writes exactly n tokens per response: ``controls.lengths`` if given, else an
    infilling template's own length, else the length classifier's most likely n; with ``length_candidates`` k > 1,
    a rollout for each of its k most likely lengths that is at least ``length_candidate_ratio`` times as likely as
    the first (all in one batch), keeping the one ``Rollout.length_score`` rates most likely.
    """
    s, c = config or GenerationConfig(), controls or Controls()
    prompt_ids, prompt_mask = batch.prompt_ids, batch.prompt_mask
    if s.guidance_scale != 1.0 and model.config.training_objective.prompt_dropout <= 0:
        raise ValueError(
            f"guidance_scale={s.guidance_scale} needs classifier-free guidance, but this model was trained "
            "without prompt dropout (objective.prompt_dropout = 0); use guidance_scale=1.0 or train with "
            "prompt_dropout > 0."
        )
    given = _check_given(c.response_ids, c.given, prompt_ids.shape[0], model.config)
    run = dict(generator=generator, callback=callback, progress=progress)
    if model.length_predictor is None:
        if c.lengths is not None:
            raise ValueError("lengths is for a length-conditioned model (length_prediction=True); this one is not.")
        ids, rollout = _sample(model, prompt_ids, prompt_mask, s, c, None, given, noise, **run)
        return _refine(model, prompt_ids, prompt_mask, s, c, None, given, ids, rollout, generator)
    b, k = prompt_ids.shape[0], s.length_candidates
    if c.lengths is not None or given is not None or k == 1:
        lengths = _lengths(model, prompt_ids, prompt_mask, c.lengths, given)
        ids, rollout = _sample(model, prompt_ids, prompt_mask, s, c, lengths, given, noise, **run)
        return _refine(model, prompt_ids, prompt_mask, s, c, lengths, given, ids, rollout, generator)
    k = min(k, model.config.max_response_length + 1)
    log_p, top = model.length_logits(prompt_ids, prompt_mask).float().log_softmax(-1).topk(k, -1)  # (B, k) each
    keep = torch.ones_like(top, dtype=torch.bool)
    if s.length_candidate_ratio > 0:  # the most likely length always; the others where they are not far behind
        keep = log_p >= log_p[:, :1] + math.log(s.length_candidate_ratio)
    flat = keep.reshape(-1).nonzero().squeeze(-1)  # (R,) the (prompt, candidate) pairs rolled out, prompt-major
    pick = lambda x: None if x is None else x.repeat_interleave(k, 0)[flat]  # noqa: E731
    beam = Controls(classifier=c.classifier, classes=pick(c.classes), classifier_scale=c.classifier_scale,
                    repeat_block=c.repeat_block)
    ids, rollout = _sample(model, pick(prompt_ids), pick(prompt_mask), s, beam, top.reshape(-1)[flat], None,
                           pick(noise), **run)  # one batch of every kept length (R, N)
    scores = torch.full((b * k,), float("-inf"), device=ids.device)
    scores[flat] = rollout.length_score(ids, generator).float() if len(flat) > b else 0.0  # nothing to choose
    best = scores.view(b, k).argmax(-1)
    rows = torch.arange(b, device=ids.device)
    chosen = (keep.reshape(-1).cumsum(0) - 1)[rows * k + best]  # the chosen candidate's row among the R
    ids = ids[chosen]
    if s.refine_iterations == 0:
        return ids
    rollout.last_confidence = rollout.last_confidence[chosen]
    return _refine(model, prompt_ids, prompt_mask, s, c, top[rows, best], None, ids, rollout, generator)


def _refine(model: "DiffusionLMModel", prompt_ids: Tensor, prompt_mask: Tensor, s: GenerationConfig, c: Controls,
            lengths: Tensor | None, given: tuple[Tensor, Tensor] | None, ids: Tensor, rollout: Rollout,
            generator) -> Tensor:
    """(M1) ``s.refine_iterations`` rounds of Mask-Predict on a finished response: round i of R holds the most
    confident (1 - (R - i) / (R + 1)) share of each response's open slots at their tokens and rolls the others out
    again (``s.refine_steps`` steps from noise) around them; a re-written slot takes its new confidence."""
    if s.refine_iterations == 0:
        return ids
    confidence = rollout.last_confidence
    n = model.config.max_response_length
    fixed = given[1] if given is not None else torch.zeros_like(ids, dtype=torch.bool)
    open_slots = ~fixed
    if lengths is not None:
        open_slots &= torch.arange(n, device=ids.device)[None] < lengths[:, None]
    refine = s.updated(num_steps=s.refine_steps)
    total = s.refine_iterations
    for i in range(total):
        share = (total - i) / (total + 1)
        count = (share * open_slots.sum(-1).float()).ceil().long()  # (B,) slots to re-write
        order = confidence.masked_fill(~open_slots, float("inf")).argsort(-1).argsort(-1)  # rank, least sure first
        rewrite = (order < count[:, None]) & open_slots
        held = (ids, ~rewrite)
        new_ids, again = _sample(model, prompt_ids, prompt_mask, refine, c, lengths, held, None, generator=generator,
                                 callback=None, progress=False)
        ids = torch.where(rewrite, new_ids, ids)
        confidence = torch.where(rewrite, again.last_confidence, confidence)
    return ids


def _lengths(model: "DiffusionLMModel", prompt_ids: Tensor, prompt_mask: Tensor, lengths: Tensor | None,
             given: tuple[Tensor, Tensor] | None) -> Tensor:
    """(B,) the n each response of a length-conditioned model gets (L2): as given, an infilling template's own (its
    slots before the given pad that ends it), or the length classifier's most likely."""
    n = model.config.max_response_length
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=prompt_ids.device).long()
        if tuple(lengths.shape) != (prompt_ids.shape[0],) or lengths.min() < 0 or lengths.max() > n:
            raise ValueError(f"lengths must be one integer in [0, {n}] per prompt, shape ({prompt_ids.shape[0]},); "
                             f"got shape {tuple(lengths.shape)}.")
        return lengths
    if given is not None:
        ids, fixed = given
        open_or_word = ~(fixed & (ids == model.config.pad_token_id))  # (B, N)
        slots = torch.arange(1, n + 1, device=ids.device)
        return (open_or_word * slots).amax(-1)
    return model.length_logits(prompt_ids, prompt_mask).argmax(-1)


def _sample(model: "DiffusionLMModel", prompt_ids: Tensor, prompt_mask: Tensor, s: GenerationConfig, c: Controls,
            lengths: Tensor | None, given: tuple[Tensor, Tensor] | None, noise: Tensor | None, *, generator, callback,
            progress) -> tuple[Tensor, Rollout]:
    """One sampler run over a batch: the response ids (B, N) and the rollout that wrote them."""
    cfg, schedule = model.config, model.schedule
    t_end = end_time(model, s)
    b, device = prompt_ids.shape[0], prompt_ids.device
    dtype = next(model.parameters()).dtype
    rollout = Rollout(model, s, prompt_ids, prompt_mask, lengths=lengths, given=given, repeat_block=c.repeat_block)
    rollouts, x0_fn = [rollout], rollout
    if s.guidance_scale != 1.0:
        rollouts.append(rollout.without_prompt())
        x0_fn = classifier_free(rollout, rollouts[1], guidance_weight(s.guidance_scale))  # (62)
    if c.classifier is not None and c.classifier_scale != 0.0:
        if cfg.position_noise_skew > 0:
            raise ValueError("classifier guidance (K1) reads one time per response; a model trained with "
                             "position_noise_skew > 0 (A1) has a time per slot: guide it without a classifier.")
        x0_fn = _classifier_guided(model, x0_fn, prompt_ids, prompt_mask, c.classifier, c.classes, c.classifier_scale)
    grid = sampling_grid(model, s.num_steps, s.grid, t_end)
    z = _start(model, (b, cfg.max_response_length, cfg.embedding_dim), noise, generator, device)
    last = {}

    def report(info: dict) -> None:  # after every accepted step
        for each in rollouts:
            each.commit()
        if info["x0"] is not None:
            last["x0"] = info["x0"]
        if callback is not None:
            callback(info)

    if cfg.position_noise_skew > 0:  # (A1) every slot on its own grid
        if s.method != "ddim":
            raise ValueError(f"a model trained with position_noise_skew > 0 (A1) samples with method='ddim' (each "
                             f"slot steps on its own time grid); got method={s.method!r}.")
        fractions = slot_fractions(lengths, b, cfg.max_response_length, device)
        progress_grid = make_grid(schedule, s.num_steps, grid, 1.0, t_end)
        ts = slot_grid(progress_grid, fractions, cfg.position_noise_skew, t_end)

        def report_progress(info: dict) -> None:  # "t" the progress s reached, as a float; "slot_t" each slot's
            report({**info, "t": float(progress_grid[info["i"] + 1]), "slot_t": info["t"]})

        z = ddim_per_slot(lambda x, t: x0_fn(x.to(dtype), t).float(), z, ts.to(device), schedule, eta=s.eta,
                          generator=generator, callback=report_progress, progress=progress)
    else:
        own = {"eta": s.eta} if s.method == "ddim" else {}
        if s.order is not None:
            own["order"] = s.order
        z = sample(
            lambda x, t: x0_fn(x.to(dtype), t).float(), z, schedule, method=s.method, steps=s.num_steps,
            prediction="x0", t_end=t_end, grid=grid, generator=generator, callback=report, progress=progress, **own,
        )
    x0 = last.get("x0")
    if x0 is None:  # core samplers that report no x0 (all refused for text; bench/text_samplers.py): one more at t_end
        x0 = x0_fn(z.to(dtype), torch.full((b,), t_end, device=device)).float()
    if s.refine_iterations == 0:
        return rollout.round(x0), rollout  # (121)
    ids, rollout.last_confidence = rollout.round_with_confidence(x0)  # (121), and how sure each slot is (M1)
    return ids, rollout


def _start(model: "DiffusionLMModel", shape: tuple[int, ...], noise: Tensor | None, generator, device) -> Tensor:
    """The starting state z_1 (125) at unit scale: ``noise`` as given, or a draw from ``generator``."""
    if noise is None:
        gen_device = generator.device if generator is not None else device
        return float(model.schedule.sigma(1.0)) * torch.randn(shape, generator=generator, device=gen_device).to(
            device, torch.float32)
    if tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape} (batch, max_response_length, embedding_dim), got "
                         f"{tuple(noise.shape)}.")
    return noise.to(device, torch.float32)


def _classifier_guided(model: "DiffusionLMModel", x0_fn, prompt_ids: Tensor, prompt_mask: Tensor, classifier,
                       classes: Tensor | None, scale: float):
    """x0_fn with classifier guidance (61) towards ``classes`` (B,) at weight ``scale``."""
    classifier.check_base(model)
    if classes is None or tuple(classes.shape) != (prompt_ids.shape[0],):
        raise ValueError("classifier guidance needs classes: one class index per prompt, shape "
                         f"({prompt_ids.shape[0]},).")
    if scale < 0:
        raise ValueError(f"classifier_scale must be >= 0 (0 = no guidance), got {scale}.")
    prompt_rows = model.embed(prompt_ids).float()
    target = classes.to(prompt_ids.device).long()[:, None]

    def log_prob_grad(z: Tensor, t: Tensor) -> Tensor:
        z = z.detach().float().requires_grad_(True)
        log_p = classifier(prompt_rows, prompt_mask, z, t.float()).log_softmax(-1).gather(1, target).sum()
        return torch.autograd.grad(log_p, z)[0]

    return classifier_guidance(x0_fn, log_prob_grad, scale, model.schedule, prediction="x0")  # (61)


def _check_given(response_ids: Tensor | None, given: Tensor | None, batch: int, cfg) -> tuple[Tensor, Tensor] | None:
    if response_ids is None and given is None:
        return None
    if response_ids is None or given is None:
        raise ValueError("infilling needs both response_ids and given (True at the slots whose tokens are fixed).")
    shape = (batch, cfg.max_response_length)
    if tuple(response_ids.shape) != shape or tuple(given.shape) != shape:
        raise ValueError(f"response_ids and given must have shape {shape} (batch, max_response_length), got "
                         f"{tuple(response_ids.shape)} and {tuple(given.shape)}.")
    if response_ids.min() < 0 or response_ids.max() >= cfg.vocab_size:
        raise ValueError(f"response_ids must be token ids in [0, {cfg.vocab_size}).")
    return response_ids.long(), given.bool()
