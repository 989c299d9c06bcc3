"""Fixtures for the zoo tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets: one thread is faster, and avoids oversubscribing a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
