"""What weighting='snr' of dsm_loss means, pinned: SNR on the noise error, SNR^2 on the x0 error."""

import torch

from diffusion_lm.core import VPSchedule, dsm_loss, sample_time


def test_snr_weighting_is_snr_squared_in_x0_terms():
    schedule = VPSchedule.linear()
    x0 = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seeded = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    loss = dsm_loss(lambda x, t: torch.zeros_like(x), x0, schedule, prediction="x0", weighting="snr",
                    generator=seeded(), reduction="none")  # x0_hat = 0: the x0 error is x0 itself
    t, pi = sample_time(64, schedule, generator=seeded())
    snr = torch.exp(2 * schedule.log_snr(t))
    torch.testing.assert_close(loss, snr**2 * x0.pow(2).mean(1) / pi)
