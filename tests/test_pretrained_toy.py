"""Toy checkpoints: safetensors + JSON, atomic saves, the same outputs after loading."""

import json

import pytest
import torch

from diffusion_lm.core import FlowSchedule, VPSchedule
from diffusion_lm.toy.pretrained import ToyDenoiser, ToyDenoiserConfig


def test_round_trip_gives_the_same_outputs_and_diffusion_settings(tmp_path):
    torch.manual_seed(0)
    model = ToyDenoiser(ToyDenoiserConfig(hidden=32, layers=2, prediction="velocity", schedule=FlowSchedule().config(),
                                          dataset="moons", loss="flow"))
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary directory left behind
    loaded = ToyDenoiser.from_pretrained(tmp_path / "ckpt")
    x, t = torch.randn(16, 2), torch.rand(16)
    torch.testing.assert_close(loaded(x, t), model(x, t), rtol=0, atol=0)
    assert loaded.prediction == "velocity" and isinstance(loaded.schedule, FlowSchedule)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["dataset"] == "moons"


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    first = ToyDenoiser(ToyDenoiserConfig(hidden=16, layers=1))
    second = ToyDenoiser(ToyDenoiserConfig(hidden=16, layers=1))
    first.save_pretrained(tmp_path / "ckpt")
    second.save_pretrained(tmp_path / "ckpt")
    loaded = ToyDenoiser.from_pretrained(tmp_path / "ckpt")
    x, t = torch.randn(4, 2), torch.rand(4)
    torch.testing.assert_close(loaded(x, t), second(x, t), rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


@pytest.mark.parametrize("field, value, match", [
    ("prediction", "noise", "prediction must be one of"),
    ("schedule", {"type": "vp", "profile": "quadratic"}, "unknown VP profile"),
    ("hidden", 0, "hidden must be an integer >= 1"),
    ("time_dim", 7, "time_dim must be even"),
])
def test_bad_configs_are_rejected(field, value, match):
    with pytest.raises(ValueError, match=match):
        ToyDenoiserConfig(**{field: value})


def test_default_schedule_is_vp_linear():
    assert ToyDenoiser(ToyDenoiserConfig(hidden=8, layers=1)).schedule.config() == VPSchedule.linear().config()
