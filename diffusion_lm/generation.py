"""Generation for the text model: Algorithm 2 and every other core sampler through one entry point.

The response embeddings are sampled at unit scale (x / sigma_E), so the start ``z ~ N(0, I)`` is
(125) and the model is a core ``model(x, t) -> x0`` callable: ``method="ddim"`` with ``eta`` is the
DDIM-stochastic rollout of (126)-(130), and ``dpm_solver++``, ``unipc``, ``heun``, ... work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .core import classifier_free, classifier_guidance, guidance_weight, sample
from .generation_config import GenerationConfig
from .modeling import DiffusionLMModel
from .modeling.length import length_candidate_score, past_the_end


def block_adjacent_repeats(logits: Tensor, pad_token_id: int, punctuation: Tensor | None = None,
                           same_word: Tensor | None = None, inplace: bool = False) -> Tensor:
    """Logits (B, N, V) in which no slot's most likely token is its left neighbour's (pad may repeat).

    Scanning left to right, where slot j would round to the token slot j - 1 rounds to, that token is
    barred at j, so j falls to its next choice. A model unsure whether a word belongs at slot j - 1 or j
    puts it at both ("and and"); barring the second copy lets the next word take that slot (the
    non-autoregressive decoders' de-duplication, applied inside the rollout rather than to the final text).

    ``punctuation`` (V,) True at the tokens the scan looks past (``DiffusionLMPipeline`` passes its tokenizer's
    commas, semicolons, colons and dashes): a word may then not repeat the last word before them either
    ("that, that"). ``same_word`` (V,) maps each token to a class of tokens that count as one word (the pipeline:
    the same token text up to case, so "He he" is a repeat). Where a slot clashes, every token of its neighbour's
    class and of that last word's class is barred, so its next choice is none of them. A slot whose only finite
    choice would be barred (a given slot of an infilling template) keeps it. ``inplace`` edits ``logits`` itself
    (the sampler's own fresh logits) instead of a copy.
    """
    if not inplace:
        logits = logits.clone()
    vocab = logits.shape[-1]
    word_of = same_word.to(logits.device) if same_word is not None else torch.arange(vocab, device=logits.device)
    if punctuation is not None:
        punctuation = punctuation.to(logits.device, torch.bool)
    top = logits.argmax(-1)  # (B, N) each slot's first choice: it changes only where a slot is barred
    previous = top[:, 0]
    word = previous.clone()
    for j in range(1, logits.shape[1]):
        current = top[:, j]
        clash = word_of[current] == word_of[previous]
        if punctuation is not None:
            clash |= (word_of[current] == word_of[word]) & ~punctuation[current]
        clash &= current != pad_token_id
        rows = clash.nonzero().squeeze(-1)
        if len(rows):
            bar = (word_of[None] == word_of[previous[rows]][:, None]) & (previous[rows] != pad_token_id)[:, None]
            if punctuation is not None:
                bar |= (word_of[None] == word_of[word[rows]][:, None]) & (word[rows] != pad_token_id)[:, None]
            bar[torch.arange(len(rows)), current[rows]] = True
            barred = logits[rows, j].masked_fill(bar, float("-inf"))
            open_rows = torch.isfinite(barred).any(-1)  # a slot with nothing left keeps its token
            logits[rows[open_rows], j] = barred[open_rows]
            top[rows, j] = logits[rows, j].argmax(-1)
        previous = top[:, j]
        if punctuation is not None:
            word = torch.where(punctuation[previous], word, previous)
    return logits


def condition_enhanced_time(schedule, t: Tensor, log_snr_offset: float) -> Tensor:
    """(C1) the time, float32, at which the denoiser reads a state at ``t``: log-SNR lowered by ``log_snr_offset``."""
    if log_snr_offset <= 0:
        return t.float()
    return schedule.t_from_log_snr(schedule.log_snr(t.double()) - log_snr_offset).float()


def round_estimate(model: DiffusionLMModel, x0: Tensor, block: bool, known: tuple[Tensor, Tensor] | None = None,
                   punctuation: Tensor | None = None, same_word: Tensor | None = None, past: Tensor | None = None,
                   exact: bool = False) -> Tensor:
    """Token ids (B, N) of an x0 estimate at unit scale: rounding (121), given slots held, the predicted length
    held (``past``, (B, N) True past it: L1, and ``exact``: no pad before it, L2), repeats blocked (B1)."""
    logits = model.rounding_logits(x0)
    if known is not None:
        logits = _hold_known(logits, *known)
    if past is not None:
        logits = hold_length(logits, past, model.config.pad_token_id, exact)
    if block:
        logits = block_adjacent_repeats(logits, model.config.pad_token_id, punctuation, same_word, inplace=True)
    return logits.argmax(-1)


class SelfConditioning:
    """The self-conditioning input of a rollout, explicit: every evaluation within a sampler step reads the
    x0_hat of the last *accepted* step; ``commit()`` (called from the sampler's per-step callback) makes
    the latest evaluation's x0_hat that input. A rejected adaptive trial or a solver's intermediate stage
    therefore never feeds the next step."""

    def __init__(self) -> None:
        self.previous: Tensor | None = None
        self.latest: Tensor | None = None

    def commit(self) -> None:
        self.previous = self.latest


def _hold_known(logits: Tensor, ids: Tensor, given: Tensor) -> Tensor:
    """Logits (B, N, V) that are one-hot (0 at the token, -inf elsewhere) at the given slots."""
    one_hot = torch.full_like(logits, float("-inf")).scatter(-1, ids[..., None], 0.0)
    return torch.where(given[..., None], one_hot, logits)


def hold_length(logits: Tensor, past: Tensor, pad_token_id: int, exact: bool = False) -> Tensor:
    """(L1) logits (B, N, V) that are one-hot pad at the slots ``past`` the predicted length; ``exact`` also bars pad
    before it, so the response has exactly that length: right for a length-conditioned model (L2), which was
    trained never to write pad there. (For an unconditioned model's L1 estimate, barring pad before the boundary
    scored lower on g2p: 16.5 -> 10.5% exact match, so L1 leaves it open.)"""
    one_hot = torch.full_like(logits[0, 0], float("-inf"))
    one_hot[pad_token_id] = 0.0
    if exact:
        logits[..., pad_token_id] = torch.where(past, logits[..., pad_token_id], float("-inf"))
    return torch.where(past[..., None], one_hot, logits)


def sampling_logit_edit(
    model: DiffusionLMModel, settings: GenerationConfig, pad_slots: dict[str, Tensor | None] | None,
    known: tuple[Tensor, Tensor] | None = None, punctuation: Tensor | None = None, same_word: Tensor | None = None,
) -> Callable[[Tensor], Tensor] | None:
    """What sampling does to each evaluation's rounding logits before an interpolated x0_hat is formed from them
    (I1), in place: given slots held (F1), the length held (L1, L2), adjacent repeats blocked (B1); None when
    nothing applies. ``_x0_model`` hands it to ``predict``; distillation builds the student's next input with it."""
    cfg = model.config
    interpolated = cfg.x0_parameterization == "interpolated"
    block = settings.block_adjacent_repeats and interpolated
    if known is None and not block and pad_slots is None:
        return None

    def edit(logits: Tensor) -> Tensor:
        if known is not None:
            logits = _hold_known(logits, *known)
        if pad_slots is not None:
            if pad_slots.get("mask") is None:
                length = (1 - logits.float().softmax(-1)[..., cfg.pad_token_id]).sum(-1).round()  # (L1)
                pad_slots["mask"] = torch.arange(logits.shape[1], device=logits.device)[None] >= length[:, None]
                if known is not None:  # a template's given slots stay as given
                    pad_slots["mask"] &= ~known[1]
            if interpolated:
                logits = hold_length(logits, pad_slots["mask"], cfg.pad_token_id, pad_slots.get("exact", False))
        if block:
            logits = block_adjacent_repeats(logits, cfg.pad_token_id, punctuation, same_word, inplace=True)
        return logits

    return edit


def _x0_model(
    model: DiffusionLMModel, prompt_ids: Tensor, prompt_mask: Tensor, settings: GenerationConfig,
    pad_slots: dict[str, Tensor | None] | None, self_cond: SelfConditioning,
    known: tuple[Tensor, Tensor] | None = None, punctuation: Tensor | None = None, same_word: Tensor | None = None,
) -> Callable[[Tensor, Tensor], Tensor]:
    """f_theta as a core model callable. With self-conditioning it feeds each call ``self_cond.previous``
    and records its x0_hat as ``self_cond.latest``.

    With ``log_snr_offset`` Delta > 0 the denoiser is evaluated at the time whose log-SNR is lambda_t - Delta
    (C1): it reads the state as noisier than it is and leans on the prompt, which keeps rollouts of a model
    with uncertain estimates from following noise in the state (DINOISER's condition-enhanced denoiser).

    With ``block_adjacent_repeats`` an interpolated x0_hat is built from logits in which no slot repeats
    its left neighbour's token, so the rollout's state never holds a doubled word.

    ``known`` = (ids (B, N), given (B, N)) holds the given slots of an infilling template at their tokens: their
    x0_hat is the token's own row at every step (for an interpolated model, through one-hot logits, so the
    adjacent-repeat block sees them), and the rollout fills the rest around them.

    ``pad_slots`` (a dict shared by the conditional and unconditional calls) turns on the pad boundary
    (L1): the first call, at t = 1, predicts each response's length from the prompt as the expected
    number of non-pad slots, sum_j (1 - p(pad at j | prompt)); from then on the slots past it are held
    at the pad embedding (for an interpolated x0, through one-hot logits), so the rollout never fills them.
    For a length-conditioned model (L2) ``pad_slots`` arrives filled: ``mask`` from the chosen length, which the
    denoiser is also told, and ``exact`` (no pad before the length).
    """
    cfg, schedule = model.config, model.schedule
    cache = model.encode_prompt(prompt_ids, prompt_mask)  # once per generation (prompt_attention="cached")
    extra: dict = {"prompt_cache": cache} if cache is not None else {}
    if model.length_predictor is not None:
        extra["past"] = pad_slots["mask"]  # (L2)

    interpolated = cfg.x0_parameterization == "interpolated"
    edit = sampling_logit_edit(model, settings, pad_slots, known, punctuation, same_word)
    if edit is not None:
        extra["edit_logits"] = edit

    def x0_hat(z: Tensor, t: Tensor) -> Tensor:
        t_model = condition_enhanced_time(schedule, t, settings.log_snr_offset)
        out, logits = model.predict(prompt_ids, prompt_mask, z, t_model, self_cond.previous, settings.temperature,
                                    **extra)  # (126)
        if known is not None and not interpolated:
            out = torch.where(known[1][..., None], model.embed(known[0]).to(out.dtype), out)
        if pad_slots is not None and not interpolated:  # an interpolated x0_hat has it from the edited logits
            pad = model.embed(torch.tensor([cfg.pad_token_id], device=z.device)).to(out.dtype)
            out = torch.where(pad_slots["mask"][..., None], pad, out)
        if cfg.self_conditioning:
            self_cond.latest = model.clamp_to_table(out) if cfg.self_conditioning_source == "rounded" else out
        return model.clamp_to_table(out) if settings.clamp else out

    return x0_hat


def sampling_grid(model: DiffusionLMModel, num_steps: int, grid: str | Tensor | None, t_end: float) -> str | Tensor:
    """The grid a sampler runs on: ``warped`` (and ``None`` for a time-warped model) becomes explicit times."""
    if grid is None:
        grid = "warped" if model.time_warp is not None else "logsnr"
    if isinstance(grid, str) and grid == "warped":
        if model.time_warp is None:
            raise ValueError("grid='warped' needs a model trained with time_warping=True; use 'logsnr' or 'time'.")
        return model.time_warp.grid(num_steps, 1.0, t_end)
    return grid


@torch.no_grad()
def generate_ids(
    model: DiffusionLMModel,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    config: GenerationConfig | None = None,
    *,
    t_end: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    response_ids: Tensor | None = None,
    given: Tensor | None = None,
    classifier=None,
    classes: Tensor | None = None,
    classifier_scale: float = 0.0,
    noise: Tensor | None = None,
    punctuation: Tensor | None = None,
    same_word: Tensor | None = None,
    lengths: Tensor | None = None,
    **settings,
) -> Tensor:
    """Response token ids (B, N) for prompts (B, P): sample the response embeddings, then round (121).

    ``config`` (a :class:`GenerationConfig`, its defaults if None) says how to sample; keyword ``settings``
    (``num_steps``, ``method``, ``eta``, ``log_snr_offset``, ``temperature``, ``guidance_scale``, ``clamp``,
    ``pad_boundary``, ``block_adjacent_repeats``, ``grid``, ``order``) override it. ``guidance_scale`` s is classifier-free guidance in
    the usual convention: 1 is the conditional model, s > 1 extrapolates away from the unconditional one,
    i.e. (62) with w = s - 1; it needs a model trained with ``prompt_dropout > 0``. The rollout ends at ``t_end``,
    by default the lowest noise level the model was trained on (``config.t_eps``). ``callback`` is called
    after every step with ``{"i", "t", "x", "x0"}`` (t the time the step reached, x the state there, x0 the estimate
    the step used, at unit scale (x / sigma_E, what ``rounding_logits`` takes), None for samplers that report none).

    Infilling: ``response_ids`` (B, N) with ``given`` (B, N) True at the slots whose tokens are fixed; the
    rollout generates the others around them (every x0 estimate holds the given rows; the output keeps
    their tokens). ``diffusion_lm.templates.encode_template`` builds both from text with ``[FILL]`` slots.

    ``noise`` (B, N, D) is the starting state z_1 (unit scale, (125)) instead of a draw from ``generator``: the
    same noise gives the same rollout (distillation pairs a teacher's and a student's rollouts this way).
    ``punctuation`` (V,) bool and ``same_word`` (V,) long: the tokens ``block_adjacent_repeats`` looks past and the
    classes of tokens it counts as one word (see that function; the pipeline passes its tokenizer's).

    A length-conditioned model (``length_prediction``, L2) writes exactly n tokens per response: ``lengths`` (B,)
    if given, else an infilling template's own length, else the length classifier's most likely n; with
    ``length_candidates`` k > 1, a rollout for each of its k most likely lengths (k times the work), keeping the
    one the model rates most likely (``length_candidate_score``: Mask-Predict's length beam, scored at t = 1).
    """
    s = (config or GenerationConfig()).updated(**settings)
    if s.guidance_scale != 1.0 and model.config.prompt_dropout <= 0:
        raise ValueError(
            f"guidance_scale={s.guidance_scale} needs classifier-free guidance, but this model was trained "
            "without prompt dropout (config.prompt_dropout = 0); use guidance_scale=1.0 or train with prompt_dropout > 0."
        )
    known = _check_known(response_ids, given, prompt_ids.shape[0], model.config)
    run = dict(t_end=t_end, generator=generator, callback=callback, progress=progress, classifier=classifier,
               classifier_scale=classifier_scale, punctuation=punctuation, same_word=same_word)
    if model.length_predictor is None:
        if lengths is not None:
            raise ValueError("lengths is for a length-conditioned model (length_prediction=True); this one is not.")
        return _rollout(model, prompt_ids, prompt_mask, s, known=known, classes=classes, noise=noise, **run)
    b, k = prompt_ids.shape[0], s.length_candidates
    if lengths is not None or known is not None or k == 1:
        lengths = _lengths(model, prompt_ids, prompt_mask, lengths, known)
        return _rollout(model, prompt_ids, prompt_mask, s, known=known, classes=classes, noise=noise, lengths=lengths, **run)
    k = min(k, model.config.max_response_length + 1)
    top = model.length_logits(prompt_ids, prompt_mask).topk(k, -1).indices  # (B, k)
    repeat = lambda x: None if x is None else x.repeat_interleave(k, 0)  # noqa: E731
    prompt_ids, prompt_mask, lengths = repeat(prompt_ids), repeat(prompt_mask), top.reshape(-1)
    ids = _rollout(model, prompt_ids, prompt_mask, s, known=None, classes=repeat(classes), noise=repeat(noise),
                   lengths=lengths, **run)
    best = length_candidate_score(model, prompt_ids, prompt_mask, ids, lengths, generator).view(b, k).argmax(-1)
    return ids.view(b, k, -1)[torch.arange(b, device=ids.device), best]


def _lengths(model: DiffusionLMModel, prompt_ids: Tensor, prompt_mask: Tensor, lengths: Tensor | None,
             known: tuple[Tensor, Tensor] | None) -> Tensor:
    """(B,) the n each response of a length-conditioned model gets (L2): as given, an infilling template's own (its
    slots before the given pad that ends it), or the length classifier's most likely."""
    n = model.config.max_response_length
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=prompt_ids.device).long()
        if tuple(lengths.shape) != (prompt_ids.shape[0],) or lengths.min() < 0 or lengths.max() > n:
            raise ValueError(f"lengths must be one integer in [0, {n}] per prompt, shape ({prompt_ids.shape[0]},); "
                             f"got shape {tuple(lengths.shape)}.")
        return lengths
    if known is not None:
        ids, given = known
        open_or_word = ~(given & (ids == model.config.pad_token_id))  # (B, N)
        slots = torch.arange(1, n + 1, device=ids.device)
        return (open_or_word * slots).amax(-1)
    return model.length_logits(prompt_ids, prompt_mask).argmax(-1)


def _rollout(
    model: DiffusionLMModel, prompt_ids: Tensor, prompt_mask: Tensor, s: GenerationConfig, *, t_end, generator,
    callback, progress, known, classifier, classes, classifier_scale, noise, punctuation, same_word,
    lengths: Tensor | None = None,
) -> Tensor:
    """One sampler run: the response ids (B, N); with ``lengths`` (B,), of exactly those lengths (L2)."""
    cfg, schedule = model.config, model.schedule
    t_end = cfg.t_eps if t_end is None else t_end
    b = prompt_ids.shape[0]
    device = prompt_ids.device
    dtype = next(model.parameters()).dtype
    pad_slots = {} if s.pad_boundary else None
    if lengths is not None:
        past = past_the_end(lengths, cfg.max_response_length)
        pad_slots = {"mask": past, "exact": True}
    states = [SelfConditioning()]
    x0_fn = _x0_model(model, prompt_ids, prompt_mask, s, pad_slots, states[0], known, punctuation, same_word)
    if s.guidance_scale != 1.0:
        states.append(SelfConditioning())
        unconditional = _x0_model(model, prompt_ids, torch.zeros_like(prompt_mask), s, pad_slots, states[1], known,
                                  punctuation, same_word)
        x0_fn = classifier_free(x0_fn, unconditional, guidance_weight(s.guidance_scale))  # (62)
    if classifier is not None and classifier_scale != 0.0:
        x0_fn = _classifier_guided(model, x0_fn, prompt_ids, prompt_mask, classifier, classes, classifier_scale)
    grid = sampling_grid(model, s.num_steps, s.grid, t_end)
    gen_device = generator.device if generator is not None else device
    shape = (b, cfg.max_response_length, cfg.embedding_dim)
    if noise is None:
        z = float(schedule.sigma(1.0)) * torch.randn(shape, generator=generator, device=gen_device).to(device, torch.float32)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape} (batch, max_response_length, embedding_dim), got {tuple(noise.shape)}.")
    else:
        z = noise.to(device, torch.float32)
    last = {}

    def report(info: dict) -> None:  # after every accepted step
        for state in states:
            state.commit()
        if info["x0"] is not None:
            last["x0"] = info["x0"]
        if callback is not None:
            callback(info)

    own = {"eta": s.eta} if s.method == "ddim" else {}
    if s.order is not None:
        own["order"] = s.order
    z = sample(
        lambda x, t: x0_fn(x.to(dtype), t).float(), z, schedule, method=s.method, steps=s.num_steps,
        prediction="x0", t_end=t_end, grid=grid, generator=generator, callback=report, progress=progress, **own,
    )
    x0 = last.get("x0")
    if x0 is None:  # samplers that report no x0 (euler, heun, rk45, SDE ones): one more evaluation at t_end
        x0 = x0_fn(z.to(dtype), torch.full((b,), t_end, device=device)).float()
    past = pad_slots.get("mask") if pad_slots is not None else None
    exact = pad_slots is not None and pad_slots.get("exact", False)
    return round_estimate(model, x0, s.block_adjacent_repeats, known, punctuation, same_word, past, exact)  # (121)



def _classifier_guided(model: DiffusionLMModel, x0_fn, prompt_ids: Tensor, prompt_mask: Tensor, classifier,
                       classes: Tensor | None, scale: float):
    """x0_fn with classifier guidance (61) towards ``classes`` (B,) at weight ``scale``."""
    classifier.check_base(model)
    if classes is None or tuple(classes.shape) != (prompt_ids.shape[0],):
        raise ValueError(f"classifier guidance needs classes: one class index per prompt, shape ({prompt_ids.shape[0]},).")
    if scale < 0:
        raise ValueError(f"classifier_scale must be >= 0 (0 = no guidance), got {scale}.")
    prompt_rows = model.embed(prompt_ids).float()
    target = classes.to(prompt_ids.device).long()[:, None]

    def log_prob_grad(z: Tensor, t: Tensor) -> Tensor:
        z = z.detach().float().requires_grad_(True)
        log_p = classifier(prompt_rows, prompt_mask, z, t.float()).log_softmax(-1).gather(1, target).sum()
        return torch.autograd.grad(log_p, z)[0]

    return classifier_guidance(x0_fn, log_prob_grad, scale, model.schedule, prediction="x0")  # (61)


def _check_known(response_ids: Tensor | None, given: Tensor | None, batch: int, cfg) -> tuple[Tensor, Tensor] | None:
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
