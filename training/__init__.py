"""Training entry points: ``python -m training.train`` (text) and ``python -m training.train_toy`` (2D)."""
