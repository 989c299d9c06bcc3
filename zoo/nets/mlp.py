"""The conditional GAN of Mirza & Osindero (2014): fully connected nets, label embeddings
concatenated to ``z`` and to the flattened discriminator input."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Architecture, register_architecture
from .blocks import OutputActivation
from .common import common_defaults

__all__ = ["CGANGenerator", "CGANDiscriminator"]


class CGANGenerator(nn.Module):
    """MLP generator on ``[z, embed(y)]``: ``(z, labels) -> (n, C, H, W)``."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        w = int(cfg["g_width"])
        k = int(cfg["num_classes"])
        self.shape = (int(cfg["channels"]), int(cfg["image_size"]), int(cfg["image_size"]))
        self.embed = nn.Embedding(k, int(cfg["embed_dim"]))
        cin = int(cfg["latent_dim"]) + int(cfg["embed_dim"])

        def block(i: int, o: int, norm: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Linear(i, o)]
            if norm:
                layers.append(nn.BatchNorm1d(o))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.net = nn.Sequential(
            *block(cin, w, norm=False),
            *block(w, 2 * w),
            *block(2 * w, 4 * w),
            nn.Linear(4 * w, self.shape[0] * self.shape[1] * self.shape[2]),
            OutputActivation(cfg["output_activation"]),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(h).view(-1, *self.shape)


class CGANDiscriminator(nn.Module):
    """MLP discriminator on ``[flatten(x), embed(y)]`` with dropout."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        w = int(cfg["d_width"])
        k = int(cfg["num_classes"])
        p = float(cfg["dropout"])
        pixels = int(cfg["channels"]) * int(cfg["image_size"]) ** 2
        self.embed = nn.Embedding(k, int(cfg["embed_dim"]))

        def drop() -> nn.Module:
            return nn.Dropout(p) if p > 0 else nn.Identity()

        self.net = nn.Sequential(
            nn.Linear(pixels + int(cfg["embed_dim"]), 2 * w),
            nn.LeakyReLU(0.2, inplace=True),
            drop(),
            nn.Linear(2 * w, w),
            nn.LeakyReLU(0.2, inplace=True),
            drop(),
            nn.Linear(w, 1),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), self.embed(labels)], dim=1)
        return self.net(h).squeeze(1)


register_architecture(Architecture(
    name="cgan",
    description="Conditional GAN (Mirza & Osindero 2014): MLP nets, label embedding concatenated "
                "to z and to the flattened discriminator input, dropout in D, BCE loss.",
    build_generator=CGANGenerator,
    build_discriminator=CGANDiscriminator,
    loss="bce",
    defaults=common_defaults(g_width=256, d_width=256, embed_dim=16, dropout=0.3),
))
