"""The length classifier fitted alone after training (training/length_fit.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from diffusion_lm.text.batching import encode_pairs
from training.length_fit import fit_length_classifier, length_accuracy, length_fit_lr_factor

from .text_helpers import reverse_pairs, tiny_model


def _batches(model, tok, pairs, size=64):
    cfg = model.config
    for start in itertools.cycle(range(0, len(pairs) - size + 1, size)):
        chunk = pairs[start : start + size]
        yield encode_pairs(tok, [p for p, _ in chunk], [r for _, r in chunk], cfg.max_prompt_length,
                           cfg.max_response_length)


def test_the_fit_learns_lengths_and_touches_no_other_weight():
    """A reversed sequence is as long as its prompt: the fitted classifier gets the lengths of held-out prompts
    right, and every weight outside the classifier is bit for bit what it was."""
    torch.manual_seed(0)
    model, tok = tiny_model(length_prediction=True)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("length_predictor.")}
    held_out = list(itertools.islice(_batches(model, tok, reverse_pairs(256, seed=9)), 4))
    start = length_accuracy(model, held_out)
    result = fit_length_classifier(model, _batches(model, tok, reverse_pairs(1024, seed=1)), steps=150, lr=3e-3)
    assert result["length_fit_steps"] == 150
    after = length_accuracy(model, held_out)
    assert start < 0.5 and after > 0.95, (start, after)
    for k, v in model.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k


def test_the_fit_schedule_warms_up_then_decays_to_zero():
    assert length_fit_lr_factor(0, 100, 10) == pytest.approx(0.1, rel=0.01)
    assert length_fit_lr_factor(9, 100, 10) == pytest.approx(0.5 * (1 + math.cos(0.09 * math.pi)))
    assert length_fit_lr_factor(100, 100, 10) == pytest.approx(0.0, abs=1e-12)


def test_a_model_without_a_length_classifier_is_refused():
    model, _ = tiny_model(length_prediction=False)
    with pytest.raises(ValueError, match="does not predict lengths"):
        fit_length_classifier(model, iter(()), steps=1, lr=1e-3)
