"""Long 2D runs (``-m slow``): a trained model reaches the two-sample floor; consistency distillation beats the
teacher at the same NFE."""

import pytest

from training import distill_toy, train_toy

from .toy_helpers import one_thread  # noqa: F401


@pytest.mark.slow
def test_swissroll_samples_reach_the_two_sample_floor(tmp_path):
    metrics = train_toy.main(["--dataset", "swissroll", "--loss", "dsm", "--prediction", "eps", "--no-plots",
                              "--out", str(tmp_path)])
    # sliced W2 over 10k samples, 3 fresh data sets; an untrained model sits ~40x above the floor
    assert metrics["sliced_wasserstein"] < 1.6 * metrics["two_sample_floor"], metrics
    nll = metrics["nll"]
    assert 0 < nll["kl_estimate"] < 0.1, nll  # held-out NLL within 0.1 nats of the exact density's


@pytest.mark.slow
def test_flow_matching_on_moons_reaches_the_floor(tmp_path):
    metrics = train_toy.main(["--dataset", "moons", "--loss", "flow", "--method", "heun", "--sample-steps", "10",
                              "--no-plots", "--out", str(tmp_path)])
    assert metrics["sliced_wasserstein"] < 1.6 * metrics["two_sample_floor"], metrics
    assert metrics["nll"]["kl_estimate"] < 0.1, metrics["nll"]


@pytest.mark.slow
def test_consistency_distillation_beats_the_teacher_at_one_and_two_nfe(tmp_path):
    metrics = distill_toy.main(["--exact-teacher", "ring", "--no-plots", "--out", str(tmp_path)])
    sw = {k: v["sliced_wasserstein"] for k, v in metrics["distance_to_data"].items()}
    best_teacher_2 = min(v for k, v in sw.items()
                         if k.startswith("teacher") and metrics["distance_to_data"][k]["nfe"] == 2)
    assert sw["consistency, 1 step"] < sw["teacher ddim, 1 step"] / 3, sw
    assert sw["consistency, 2 steps"] < best_teacher_2, sw
