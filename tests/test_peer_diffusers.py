"""Cross-check with diffusers: our ddim and ddpm reproduce DDIMScheduler and DDPMScheduler step for step."""

import pytest
import torch

from diffusion_lm.core import VPSchedule, sample
from diffusion_lm.toy import GaussianMixture

diffusers = pytest.importorskip("diffusers")
N_TRAIN = 1000


def _setup(scheduler, dtype):
    if dtype == torch.float64:  # run the peer's arithmetic in float64 too, so only the algorithms differ
        scheduler.alphas_cumprod = torch.cumprod(1 - scheduler.betas.to(torch.float64), 0)
        scheduler.alphas = 1 - scheduler.betas.to(torch.float64)
        scheduler.betas = scheduler.betas.to(torch.float64)
        scheduler.one = torch.tensor(1.0, dtype=torch.float64)
        if hasattr(scheduler, "final_alpha_cumprod"):
            scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    schedule = VPSchedule.from_betas(scheduler.betas.to(torch.float64))
    mixture = GaussianMixture.ring()
    exact = mixture.model(schedule, "eps")
    # diffusers' timestep k has alphas_cumprod[k] = alphabar_{k+1}: our t = (k + 1) / N
    by_index = lambda x, k: exact(x.double(),
                                  torch.full((x.shape[0],), (k + 1) / N_TRAIN, dtype=torch.float64)).to(x.dtype)
    ours = lambda x, t: exact(x.double(), t.double()).to(x.dtype)
    return schedule, by_index, ours


def _grid(scheduler):
    return torch.tensor([(int(k) + 1) / N_TRAIN for k in scheduler.timesteps] + [0.0], dtype=torch.float64)


# float32: the peer rounds its coefficients to float32 (we keep them in float64); float64: algorithms alone
TOLERANCE = {"ddim": {torch.float32: 2e-5, torch.float64: 1e-10}, "ddpm": {torch.float32: 1e-3, torch.float64: 1e-10}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_matches_diffusers(steps, dtype):
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=N_TRAIN, clip_sample=False)
    schedule, by_index, ours = _setup(scheduler, dtype)
    scheduler.set_timesteps(steps)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x = x_T.clone()
    for k in scheduler.timesteps:
        x = scheduler.step(by_index(x, int(k)), k, x).prev_sample
    mine = sample(ours, x_T.clone(), schedule, method="ddim", grid=_grid(scheduler))
    torch.testing.assert_close(mine, x, rtol=0, atol=TOLERANCE["ddim"][dtype])
    assert float((mine - x).abs().median()) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [1000, 50])
def test_ddpm_matches_diffusers(steps, dtype):
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=N_TRAIN, clip_sample=False)
    schedule, by_index, ours = _setup(scheduler, dtype)
    scheduler.set_timesteps(steps)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    x = x_T.clone()
    for k in scheduler.timesteps:
        x = scheduler.step(by_index(x, int(k)), k, x, generator=gen).prev_sample
    mine = sample(ours, x_T.clone(), schedule, method="ddpm", grid=_grid(scheduler),
                  generator=torch.Generator().manual_seed(1))
    # the same noise draws in the same order
    torch.testing.assert_close(mine, x, rtol=0, atol=TOLERANCE["ddpm"][dtype])
    assert float((mine - x).abs().median()) < (1e-4 if dtype == torch.float32 else 1e-12)
