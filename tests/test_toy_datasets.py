"""2D toy data: samplers and their exact densities agree."""

import torch

from diffusion_lm.toy.datasets import toy_distribution


def test_checkerboard_samples_lie_on_black_squares():
    data = toy_distribution("checkerboard")
    assert torch.isfinite(data.log_prob(data.sample(2000, torch.Generator().manual_seed(5)))).all()
