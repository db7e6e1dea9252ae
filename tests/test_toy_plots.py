"""The 2D pictures are written (atomically) and show what they claim."""

import pytest
import torch

from diffusion_lm.core import VPSchedule, sample
from diffusion_lm.toy.datasets import toy_distribution

pytest.importorskip("matplotlib")
from diffusion_lm.toy.plots import plot_samples, plot_score_field, plot_trajectories  # noqa: E402

from .toy_helpers import one_thread  # noqa: E402, F401


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_samples_trajectories_and_score_field(tmp_path):
    data = toy_distribution("ring")
    schedule = VPSchedule.linear()
    model = data.mixture.model(schedule, "eps")
    x = data.sample(500, torch.Generator().manual_seed(0))
    _png(plot_samples({"data": x, "samples": x + 0.01}, tmp_path / "a" / "s.png", "title"))
    states = [torch.randn(5, 2, dtype=torch.float64)]
    sample(model, states[0], schedule, method="heun", steps=8, t_end=0.0,
           callback=lambda info: states.append(info["x"]))
    assert len(states) == 9
    _png(plot_trajectories({"heun": torch.stack(states)}, x, tmp_path / "b" / "t.png"))
    field = lambda xy, t: -model(xy, torch.full((len(xy),), t, dtype=torch.float64))
    _png(plot_score_field({"exact": field}, (0.1, 0.5), tmp_path / "c" / "f.png", data=x))
