"""Stochastic samplers reproduce the mixture in distribution, within the two-sample noise floor."""

import pytest
import torch

from diffusion_lm.core import VPSchedule, langevin_corrector, sample
from diffusion_lm.toy import GaussianMixture, sliced_wasserstein

N = 3000
SCHEDULE = VPSchedule.linear()
T_END = 1e-3


def _exact_at_t_end(mixture, seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = mixture.sample(N, gen)
    return (float(SCHEDULE.alpha(T_END)) * x0
            + float(SCHEDULE.sigma(T_END)) * torch.randn(N, 2, generator=gen, dtype=torch.float64))


@pytest.fixture(scope="module")
def setting():
    mixture = GaussianMixture.ring(8, radius=2.0, std=0.1)
    proj = torch.Generator().manual_seed(123)
    reference = _exact_at_t_end(mixture, 1)
    floor = torch.tensor([sliced_wasserstein(_exact_at_t_end(mixture, 100 + k), reference, 128, proj)
                          for k in range(8)])
    return mixture, reference, float(floor.mean()), float(floor.std())


CASES = [
    ("euler_maruyama", {"steps": 400}),
    ("ddpm", {"steps": 200}),
    ("ddim", {"steps": 200, "eta": 1.0}),
    ("pc", {"steps": 200, "corrector_steps": 1, "snr": 0.1}),
    ("langevin", {"steps": 200, "corrector_steps": 5, "snr": 0.1}),
]


@pytest.mark.parametrize("method,kw", CASES, ids=[c[0] for c in CASES])
def test_samples_match_the_mixture(setting, method, kw):
    mixture, reference, floor_mean, floor_std = setting
    gen = torch.Generator().manual_seed(7)
    x_T = torch.randn(N, 2, generator=gen, dtype=torch.float64)
    x = sample(mixture.model(SCHEDULE, "eps"), x_T, SCHEDULE, method=method, t_end=T_END, generator=gen, **kw)
    distance = sliced_wasserstein(x, reference, 128, torch.Generator().manual_seed(123))
    assert distance < floor_mean + 3 * floor_std, (distance, floor_mean, floor_std)


def test_too_few_steps_is_detectably_wrong(setting):
    """The check above has power: a 3-step Euler-Maruyama run is far outside the floor."""
    mixture, reference, floor_mean, floor_std = setting
    gen = torch.Generator().manual_seed(7)
    x = sample(mixture.model(SCHEDULE), torch.randn(N, 2, generator=gen, dtype=torch.float64), SCHEDULE,
               method="euler_maruyama", steps=3, generator=gen)
    assert sliced_wasserstein(x, reference, 128, torch.Generator().manual_seed(123)) > floor_mean + 10 * floor_std


def test_langevin_corrector_at_fixed_t_keeps_the_marginal(setting):
    mixture, *_ = setting
    t = 0.3
    gen = torch.Generator().manual_seed(0)
    exact = (float(SCHEDULE.alpha(t)) * mixture.sample(N, gen)
             + float(SCHEDULE.sigma(t)) * torch.randn(N, 2, generator=gen, dtype=torch.float64))
    start = torch.randn(N, 2, generator=gen, dtype=torch.float64) * 3  # far from p_t
    x = langevin_corrector(mixture.model(SCHEDULE), start, t, SCHEDULE, steps=300, snr=0.2, generator=gen)
    other = (float(SCHEDULE.alpha(t)) * mixture.sample(N, gen)
             + float(SCHEDULE.sigma(t)) * torch.randn(N, 2, generator=gen, dtype=torch.float64))
    floor = sliced_wasserstein(other, exact, 128, torch.Generator().manual_seed(1))
    assert sliced_wasserstein(x, exact, 128, torch.Generator().manual_seed(1)) < 2.5 * floor + 0.02
