"""Shared pieces of the 2D and digits tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small models run fastest on one thread, and then do not fight other jobs for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
