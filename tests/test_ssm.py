"""Sliced score matching: its expectation is exact score matching (34) up to a model-independent constant."""

import math

import pytest
import torch

from diffusion_lm.core import VPSchedule, convert, dsm_loss, loss_weight, sample_time
from diffusion_lm.toy.ssm import sliced_score_matching, ssm_loss

from .toy_helpers import one_thread  # noqa: F401

SCHEDULE = VPSchedule.linear()


def _perturbed(mixture, prediction):
    """The exact model plus a smooth, nonlinear, t-dependent error."""
    exact = mixture.model(SCHEDULE, prediction)
    a = torch.tensor([[0.8, -0.3, 0.5], [0.2, 0.9, -0.4], [-0.6, 0.1, 0.7]], dtype=torch.float64)
    return lambda x, t: exact(x, t) + 0.3 * torch.tanh(x @ a) * (1 + t[:, None])


class _Recorder:
    def __init__(self, model):
        self.model, self.inputs = model, []

    def __call__(self, x, t):
        self.inputs.append((x.detach(), t.detach()))
        return self.model(x, t)


@pytest.mark.parametrize("prediction, weighting, t_sampling", [
    ("eps", "none", "uniform"), ("x0", "snr", "uniform"), ("v", "likelihood", "importance"),
])
def test_ssm_and_dsm_differences_are_the_score_matching_difference(skewed, prediction, weighting, t_sampling):
    n = 8000
    kw = dict(prediction=prediction, weighting=weighting, t_sampling=t_sampling)
    exact, recorder = skewed.model(SCHEDULE, prediction), _Recorder(_perturbed(skewed, prediction))
    x0 = skewed.sample(n, torch.Generator().manual_seed(0))
    seeded = lambda: torch.Generator().manual_seed(1)  # the same seed draws the same t and x_t for every loss
    ssm = ssm_loss(recorder, x0, SCHEDULE, generator=seeded(), reduction="none", **kw).detach() \
        - ssm_loss(exact, x0, SCHEDULE, generator=seeded(), reduction="none", **kw).detach()
    dsm = dsm_loss(recorder.model, x0, SCHEDULE, generator=seeded(), reduction="none", **kw) \
        - dsm_loss(exact, x0, SCHEDULE, generator=seeded(), reduction="none", **kw)
    # truth: (w / pi) sigma_t^2 / d ||s - grad log p_t||^2 with the mixture's exact score (34)
    x_t, t = recorder.inputs[0]
    t, pi = sample_time(n, SCHEDULE, t_sampling=t_sampling, generator=seeded())
    s = convert(recorder.model(x_t, t), x_t, t, SCHEDULE, prediction, "score")
    truth = loss_weight(SCHEDULE, t, weighting) / pi * SCHEDULE.sigma(t) ** 2 / 3 \
        * (s - skewed.score(x_t, t, SCHEDULE)).pow(2).sum(1)
    for name, diff in (("ssm", ssm), ("dsm", dsm)):
        se = float((diff - truth).std()) / math.sqrt(n)
        assert float(truth.mean()) > 10 * se, (name, float(truth.mean()), se)
        assert abs(float(diff.mean() - truth.mean())) < 4 * se, (name, float(diff.mean()), float(truth.mean()), se)


def test_sliced_score_matching_on_a_gaussian_in_closed_form():
    # p = N(0, c^2 I) in d = 4, model s(x) = -a x: J = -a d + a^2 c^2 d / 2,
    # and 1/2 E||s - grad log p||^2 - J = d / (2 c^2) does not depend on a
    d, c, a = 4, 1.5, 0.7
    x = c * torch.randn(50_000, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for vr in (True, False):
        for probe in ("rademacher", "gaussian"):
            j = sliced_score_matching(lambda y: -a * y, x, probe=probe, variance_reduction=vr, projections=2,
                                      generator=torch.Generator().manual_seed(3)).detach()
            se = float(j.std()) / math.sqrt(len(j))
            assert abs(float(j.mean()) - (-a * d + a * a * c * c * d / 2)) < 4 * se + 1e-12, (vr, probe)


def test_ssm_rejects_bad_arguments(skewed):
    model = skewed.model(SCHEDULE)
    x0 = skewed.sample(4)
    with pytest.raises(ValueError, match="probe"):
        ssm_loss(model, x0, SCHEDULE, probe="uniform")
    with pytest.raises(ValueError, match="projections"):
        ssm_loss(model, x0, SCHEDULE, projections=0)
    with pytest.raises(ValueError, match="must match x"):
        ssm_loss(lambda x, t: x[:, :2], x0, SCHEDULE)


def test_ssm_loss_trains_and_evaluates_under_no_grad(skewed):
    net = torch.nn.Linear(3, 3).double()
    model = lambda x, t: net(x)
    x0 = skewed.sample(16)
    ssm_loss(model, x0, SCHEDULE).backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not ssm_loss(model, x0, SCHEDULE).requires_grad
