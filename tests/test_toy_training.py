"""2D training pieces: objectives learn the exact denoiser, metrics against exact answers, the CLI's checks."""

import pytest
import torch

from diffusion_lm.core import FlowSchedule, VPSchedule
from diffusion_lm.toy.datasets import toy_distribution
from diffusion_lm.toy.metrics import distance_to_data, heldout_nll
from diffusion_lm.toy.mlp import ToyMLP
from diffusion_lm.toy.training import Objective, fit, warmup_cosine
from training import train_toy

from .toy_helpers import one_thread  # noqa: F401


def _excess_loss(objective, model, mixture, schedule, prediction, n=20_000):
    """The objective of the model minus that of the exact denoiser on the same draws: the weighted score
    matching error (34) (dsm, ssm) or the velocity error (flow), zero only for the exact model."""
    x0 = mixture.sample(n, torch.Generator().manual_seed(11)).float()
    exact = mixture.model(schedule, prediction)
    same = lambda: torch.Generator().manual_seed(12)
    with torch.no_grad():
        return float(objective(model, x0, schedule, same()) - objective(exact, x0, schedule, same()))


@pytest.mark.parametrize("loss, prediction, schedule", [
    ("dsm", "x0", VPSchedule.linear()), ("ssm", "eps", VPSchedule.linear()), ("flow", "velocity", FlowSchedule()),
])
def test_each_objective_learns_the_exact_denoiser(loss, prediction, schedule):
    data = toy_distribution("ring")
    torch.manual_seed(0)
    model = ToyMLP(hidden=64, layers=2)
    objective = Objective(loss, prediction)
    before = _excess_loss(objective, model, data.mixture, schedule, prediction)
    fit(model, lambda n, g: data.sample(n, g).float(), lambda m, x0, g: objective(m, x0, schedule, g),
        steps=300, batch_size=256, lr=3e-3, generator=torch.Generator().manual_seed(1), progress=False)
    after = _excess_loss(objective, model, data.mixture, schedule, prediction)
    assert after < before / 10, (before, after)


def test_objective_checks_name_the_fix():
    with pytest.raises(ValueError, match="--prediction velocity"):
        Objective("flow", "eps")
    with pytest.raises(ValueError, match="no weighting"):
        Objective("flow", "velocity", weighting="snr")
    with pytest.raises(ValueError, match="unknown loss"):
        Objective("ncsn")
    with pytest.raises(ValueError, match="--schedule flow"):
        Objective("flow", "velocity")(lambda x, t: x, torch.zeros(2, 2), VPSchedule.linear(), None)


def test_warmup_then_cosine_to_zero():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0)


def test_heldout_nll_of_the_exact_model_is_the_exact_nll():
    data = toy_distribution("ring")
    schedule = VPSchedule.linear()
    x0 = data.sample(40, torch.Generator().manual_seed(2))
    out = heldout_nll(data.mixture.model(schedule, "eps"), x0, schedule, prediction="eps",
                      exact_log_prob=lambda x: data.mixture.log_prob(x, 1e-3, schedule))
    assert abs(out["model_nll"] - out["exact_nll"]) < 1e-3 and abs(out["kl_estimate"]) < 1e-3, out


def test_distance_to_data_sits_at_the_floor_for_exact_samples_and_above_it_otherwise():
    data = toy_distribution("moons")
    exact = distance_to_data(data.sample(4000, torch.Generator().manual_seed(3)), data.sample)
    shifted = distance_to_data(data.sample(4000, torch.Generator().manual_seed(3)) + 0.2, data.sample)
    assert exact["distance"] < 1.5 * exact["floor"]
    assert shifted["distance"] > 0.15 > 3 * shifted["floor"]  # a shift of 0.2 moves every 1-D projection by 0.2 |cos|


@pytest.mark.parametrize("argv, message", [
    (["--loss", "flow", "--prediction", "eps"], "--prediction velocity"),
    (["--schedule", "flow", "--method", "euler_maruyama"], "diverges on the flow schedule"),
    (["--loss", "dsm", "--steps", "0"], "must be >= 1"),
])
def test_cli_rejects_inconsistent_flags(argv, message, capsys):
    with pytest.raises(SystemExit):
        train_toy.parse_args(argv)
    assert message in capsys.readouterr().err


def test_cli_defaults_follow_the_loss():
    args = train_toy.parse_args(["--loss", "flow"])
    assert (args.prediction, args.schedule) == ("velocity", "flow")
    args = train_toy.parse_args(["--dataset", "swissroll", "--loss", "dsm", "--prediction", "eps"])
    assert (args.prediction, args.schedule) == ("eps", "linear")

