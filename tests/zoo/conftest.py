"""Fixtures for the zoo tests: one thread per test, and the test-only ``tiny`` architecture."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from zoo.registry import ARCHITECTURES, Architecture, register_architecture


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets: one thread is faster, and avoids oversubscribing a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TinyG(nn.Module):
    """A linear conditional generator ``(z, labels) -> tanh images (n, channels, size, size)``;
    scriptable with ``torch.jit.script``."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.size, self.channels = cfg["image_size"], cfg["channels"]
        self.embed = nn.Embedding(cfg["num_classes"], cfg["latent_dim"])
        self.fc = nn.Linear(cfg["latent_dim"], self.channels * self.size * self.size)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.fc(z + self.embed(labels)))
        return x.view(z.shape[0], self.channels, self.size, self.size)


class TinyD(nn.Module):
    """A linear critic on the flattened image."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.fc = nn.Linear(cfg["channels"] * cfg["image_size"] ** 2, 1)

    def forward(self, x, labels):
        return self.fc(x.flatten(1))[:, 0]


@dataclass(frozen=True)
class TinyArch:
    """A registered test architecture: ``name`` goes into checkpoints, ``G(cfg)`` builds its
    generator (the network ``load_generator`` rebuilds from such a checkpoint)."""

    name: str
    G: type[nn.Module] = TinyG


@pytest.fixture(scope="session")
def tiny():
    """The test-only linear architecture ``tiny-test`` (TinyG/TinyD, bce loss), registered for the
    session and removed afterwards."""
    arch = TinyArch("tiny-test")
    register_architecture(
        Architecture(name=arch.name, description="test-only linear generator", build_generator=TinyG,
                     build_discriminator=TinyD, loss="bce", defaults={"latent_dim": 8}),
        overwrite=True,
    )
    yield arch
    ARCHITECTURES.remove(arch.name)
