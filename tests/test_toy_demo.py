"""The README demo: a short 2D training run learns the mixture and writes its picture."""

import json

from training import train_toy


def test_short_training_run_learns_the_ring(tmp_path):
    metrics = train_toy.main(["--dataset", "ring", "--steps", "600", "--samples", "2000", "--out", str(tmp_path)])
    assert (tmp_path / "ring_samples.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    # an untrained model's samples sit ~1.5 away; a trained one is within a few noise floors
    assert metrics["sliced_wasserstein"] < 3 * metrics["two_sample_floor"], metrics


def test_the_demo_says_what_to_run_next_with_the_model_it_saved(tmp_path):
    """After its scores, the demo prints commands for the model it saved: generate, watch, train longer, distil it
    into a fast one, your data."""
    import subprocess
    import sys

    from training.demo import next_steps

    text = next_steps(tmp_path / "model")
    assert f"python -m inference.generate --model {tmp_path / 'model'} --prompt" in text
    assert f"python -m inference.app --model {tmp_path / 'model'}" in text and "your own data" in text
    assert f"python -m training.distill --teacher {tmp_path / 'model'} " in text, "the path to a fast model"
    help_text = subprocess.run([sys.executable, "-m", "inference.generate", "--help"], capture_output=True, text=True,
                               timeout=120).stdout
    assert "--prompt" in help_text
