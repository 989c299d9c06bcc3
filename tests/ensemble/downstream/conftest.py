"""Fixtures of the downstream tests: one torch thread, the real validation and test splits, toys."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a shared 2-core machine, more threads only contend (4x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pneumonia_val(data_root):
    from ensemble.data import load_medmnist

    return load_medmnist("pneumoniamnist", split="val", root=data_root, download=False)


@pytest.fixture(scope="module")
def pneumonia_test(data_root):
    from ensemble.data import load_medmnist

    return load_medmnist("pneumoniamnist", split="test", root=data_root, download=False)

