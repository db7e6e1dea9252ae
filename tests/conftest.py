import json

import pytest
import torch

from diffusion_lm.toy import GaussianMixture


@pytest.fixture
def ring() -> GaussianMixture:
    return GaussianMixture.ring(8, radius=2.0, std=0.1)


@pytest.fixture
def skewed() -> GaussianMixture:
    """An anisotropic, unequally weighted 3-component mixture in 3D: no symmetry to hide behind."""
    means = torch.tensor([[1.0, -0.5, 0.3], [-1.2, 0.8, 0.0], [0.2, 1.5, -1.0]])
    stds = torch.tensor([[0.3, 0.5, 0.2], [0.4, 0.2, 0.6], [0.25, 0.35, 0.3]])
    return GaussianMixture(means, stds, torch.tensor([0.5, 0.3, 0.2]))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder with train.jsonl (1500 word-reversal pairs) and validation.jsonl (64), for training runs."""
    from .text_helpers import reverse_pairs

    folder = tmp_path_factory.mktemp("data")
    rows = lambda n, seed: [{"prompt": p, "response": r} for p, r in reverse_pairs(n, seed)]
    for name, n, seed in (("train", 1500, 1), ("validation", 64, 2)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, seed)))
    return folder
