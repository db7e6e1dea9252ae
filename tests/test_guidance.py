"""Guidance wrappers: classifier guidance with the exact posterior gives the exact class-conditional model."""

import pytest
import torch

from diffusion_lm.core import PREDICTIONS, VPSchedule, classifier_free, classifier_guidance, sample

SCHEDULE = VPSchedule.linear()


def _posterior_grad(mixture, label):
    def grad(x, t):
        x = x.requires_grad_(True)
        logp = torch.log(mixture.posterior(x, t, SCHEDULE)[:, label])
        return torch.autograd.grad(logp.sum(), x)[0]

    return grad


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_classifier_guidance_at_scale_one_is_the_conditional_model(skewed, prediction):
    label = 1
    guided = classifier_guidance(skewed.model(SCHEDULE, prediction), _posterior_grad(skewed, label), 1.0, SCHEDULE,
                                 prediction)
    conditional = skewed.component(label).model(SCHEDULE, prediction)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    torch.testing.assert_close(guided(x, t), conditional(x, t), rtol=1e-8, atol=1e-8)


def test_classifier_guidance_at_scale_zero_is_the_model(skewed):
    model = skewed.model(SCHEDULE)
    guided = classifier_guidance(model, _posterior_grad(skewed, 0), 0.0, SCHEDULE)
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    torch.testing.assert_close(guided(x, t), model(x, t), rtol=0, atol=0)


def test_guided_sampling_lands_in_the_chosen_component(ring):
    label = 3
    guided = classifier_guidance(ring.model(SCHEDULE), _posterior_grad(ring, label), 1.0, SCHEDULE)
    x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = sample(guided, x_T, SCHEDULE, method="dpm_solver++", steps=30)
    assert float(ring.posterior(x)[:, label].mean()) > 0.99


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.5])
def test_classifier_free_combination(scale):
    cond = lambda x, t: 2.0 * x + t[:, None]
    uncond = lambda x, t: -x
    x, t = torch.randn(5, 2), torch.rand(5)
    torch.testing.assert_close(classifier_free(cond, uncond, scale)(x, t),
                               (1 + scale) * cond(x, t) - scale * uncond(x, t))


def test_classifier_free_with_exact_models_at_scale_zero_is_the_conditional(ring):
    cond, uncond = ring.component(2).model(SCHEDULE), ring.model(SCHEDULE)
    x, t = torch.randn(6, 2, dtype=torch.float64), torch.full((6,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(classifier_free(cond, uncond, 0.0)(x, t), cond(x, t))


@pytest.mark.parametrize("guidance_scale", [0.0, 1.0, 3.5])
def test_guidance_scale_converts_to_w_as_diffusers_combines(guidance_scale):
    """The text pipeline's guidance_scale s (diffusers: uncond + s (cond - uncond)) is (62) with w = s - 1."""
    from diffusion_lm.core import guidance_weight

    cond, uncond = torch.randn(3, 4), torch.randn(3, 4)
    guided = classifier_free(lambda x, t: cond, lambda x, t: uncond, guidance_weight(guidance_scale))(None, None)
    torch.testing.assert_close(guided, uncond + guidance_scale * (cond - uncond))
    with pytest.raises(ValueError, match="guidance_scale must be >= 0"):
        guidance_weight(-1.0)
