"""Fixtures of the downstream tests: one torch thread, the real validation and test splits, toys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TOYS = Path(__file__).resolve().parents[1]  # tests/ensemble: _synth_toys.py, a callable generator


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


@pytest.fixture
def toy_catalog(tmp_path, monkeypatch):
    """A catalog of four toy generators ``toy0@0`` .. ``toy3@0`` (2 classes, 28x28)."""
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(TOYS))
    cat = Catalog(tmp_path / "zoo")
    for s in range(4):
        cat.register_callable("_synth_toys:make_toy", name=f"toy{s}@0", num_classes=2,
                              image_shape=(28, 28), dataset="pneumoniamnist", style=s)
    return cat
