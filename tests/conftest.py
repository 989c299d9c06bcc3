"""Shared fixtures. Real MedMNIST data comes from $GAN_ENSEMBLE_DATA or ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("GAN_ENSEMBLE_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding pneumoniamnist.npz (the tests need the real file; they never download)."""
    root = _data_root()
    if not (root / "pneumoniamnist.npz").is_file():
        pytest.fail(f"real data missing: {root}/pneumoniamnist.npz; set GAN_ENSEMBLE_DATA")
    return root


@pytest.fixture(scope="session")
def pneumonia(data_root):
    """The real PneumoniaMNIST training split (4,708 images, sorted by class in this copy)."""
    from ensemble.data import load_medmnist

    return load_medmnist("pneumoniamnist", split="train", root=data_root, download=False)


@pytest.fixture(scope="session")
def pneumonia_small(pneumonia):
    """A shuffled, stratified 512-image subset of the real training split."""
    return pneumonia.subset(512, seed=0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache so nothing leaks between tests or from the user's."""
    monkeypatch.setenv("GAN_ENSEMBLE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_root):
    """One tiny end-to-end pipeline run on real data, shared by the pipeline and notebook tests."""
    from ensemble.pipeline import make_config, run_pipeline

    out = tmp_path_factory.mktemp("run")
    res = run_pipeline(make_config("tiny", data_root=str(data_root), device="cpu"), out, progress=False)
    return out, res


@pytest.fixture(scope="session")
def torchscript_generator():
    """``make(path, size=12, hidden=4)``: save a small conditional TorchScript generator
    ``(z, labels) -> tanh images (n, 1, size, size)`` (2 classes, latent = hidden) and return path."""
    import torch
    from torch import nn

    class Conditional(nn.Module):
        def __init__(self, size: int, hidden: int):
            super().__init__()
            torch.manual_seed(0)
            self.size = size
            self.embed = nn.Embedding(2, hidden)
            self.fc = nn.Linear(hidden, size * size)

        def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(z + self.embed(labels))).view(z.shape[0], 1, self.size, self.size)

    def make(path, size: int = 12, hidden: int = 4):
        torch.jit.save(torch.jit.script(Conditional(size, hidden)), str(path))
        return path

    return make
