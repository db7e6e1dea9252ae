"""The README demo: a short 2D training run learns the mixture and writes its picture."""

import json

from training import train_toy


def test_short_training_run_learns_the_ring(tmp_path):
    metrics = train_toy.main(["--dataset", "ring", "--steps", "600", "--samples", "2000", "--out", str(tmp_path)])
    assert (tmp_path / "ring_samples.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    # an untrained model's samples sit ~1.5 away; a trained one is within a few noise floors
    assert metrics["sliced_wasserstein"] < 3 * metrics["two_sample_floor"], metrics
