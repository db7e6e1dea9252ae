"""(L2) A length classifier fitted on its own after training: the denoiser's weights fixed, the classifier's
cross-entropy on the training prompts for ``steps`` more batches (docs/benchmarks.md, "Lengths counted, and
fitted after training"). The classifier reads only the prompt's frozen table rows, so a step of it costs a small
fraction of a denoiser step, and it underfits in the steps the denoiser needs (g2p: 58% of lengths right after
1000 joint steps, 67-69% after 3000 more of its own)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from diffusion_lm.text.batching import PairBatch
from diffusion_lm.text.length import response_lengths


def length_fit_lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from 1 to 0 at ``steps``."""
    return min(1.0, (step + 1) / max(warmup, 1)) * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))


@torch.no_grad()
def length_accuracy(model, batches: list[PairBatch]) -> float:
    """Share of responses whose length is the classifier's most likely one."""
    right = total = 0
    for batch in batches:
        lengths = response_lengths(batch.response_ids, model.config.pad_token_id)
        right += int((model.length_logits(batch.prompt_ids, batch.prompt_mask).argmax(-1) == lengths).sum())
        total += len(lengths)
    return right / max(total, 1)


def fit_length_classifier(model, batches: Iterator[PairBatch], steps: int, lr: float, *, warmup: int = 50,
                          grad_clip: float | None = 1.0, progress: bool = False) -> dict[str, float]:
    """Train ``model.length_predictor`` alone for ``steps`` batches with AdamW (``lr``, warm-up then cosine to 0);
    every other weight is untouched. Returns the steps, seconds and the last batch's loss."""
    predictor = model.length_predictor
    if predictor is None:
        raise ValueError("this model does not predict lengths (length_prediction=False): there is nothing to fit.")
    if steps <= 0:
        return {"length_fit_steps": 0, "length_fit_seconds": 0.0}
    from tqdm.auto import tqdm

    was_training = predictor.training
    predictor.train()
    params = [p for p in predictor.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: length_fit_lr_factor(s, steps, warmup))
    start, loss = time.perf_counter(), torch.zeros(())
    for _ in tqdm(range(steps), desc="length fit", disable=not progress, dynamic_ncols=True):
        batch = next(batches)
        lengths = response_lengths(batch.response_ids, model.config.pad_token_id)
        loss = F.cross_entropy(model.length_logits(batch.prompt_ids, batch.prompt_mask).float(), lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        scheduler.step()
    predictor.train(was_training)
    return {"length_fit_steps": steps, "length_fit_seconds": round(time.perf_counter() - start, 2),
            "length_fit_loss": float(loss.detach())}
