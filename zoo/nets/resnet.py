"""Residual nets and the families built on them: wgan-gp and sngan.

The generator is a two-stage residual upsampler whose batch norms are class-conditional (gain and
bias per class). The discriminator is a residual downsampler; the class enters either as one-hot
maps concatenated to the image (wgan-gp) or through a projection term
``<embed(y), phi(x)>`` added to the logit (sngan, Miyato & Koyama 2018), with spectral norm on
every layer for sngan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Architecture, register_architecture
from .blocks import (
    ConditionalBatchNorm2d,
    OutputActivation,
    ResBlockDown,
    ResBlockUp,
    base_size,
    label_maps,
    maybe_sn,
)
from .common import common_defaults

__all__ = ["ResNetGenerator", "ResNetDiscriminator"]


class ResNetGenerator(nn.Module):
    """Class-conditional residual generator: ``(z, labels) -> (n, C, H, W)``."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        w = int(cfg["g_width"])
        k = int(cfg["num_classes"])
        self.w = w
        self.s0 = base_size(cfg["image_size"])
        self.fc = nn.Linear(int(cfg["latent_dim"]), 4 * w * self.s0 * self.s0)
        self.block1 = ResBlockUp(4 * w, 2 * w, k)
        self.block2 = ResBlockUp(2 * w, w, k)
        self.bn = ConditionalBatchNorm2d(w, k)
        self.out = nn.Conv2d(w, int(cfg["channels"]), 3, padding=1)
        self.act = OutputActivation(cfg["output_activation"])
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 4 * self.w, self.s0, self.s0)
        h = self.block1(h, labels)
        h = self.block2(h, labels)
        h = F.relu(self.bn(h, labels))
        return self.act(self.out(h))


class ResNetDiscriminator(nn.Module):
    """Residual discriminator with label conditioning by ``projection`` or ``concat``."""

    def __init__(self, cfg: dict, *, sn: bool, conditioning: str) -> None:
        super().__init__()
        if conditioning not in ("projection", "concat"):
            raise ValueError(f"conditioning must be 'projection' or 'concat', got {conditioning!r}")
        self.conditioning = conditioning
        self.num_classes = int(cfg["num_classes"])
        self.size = int(cfg["image_size"])
        w = int(cfg["d_width"])
        p = float(cfg["dropout"])
        cin = int(cfg["channels"]) + (self.num_classes if conditioning == "concat" else 0)
        self.blocks = nn.Sequential(
            ResBlockDown(cin, w, down=True, sn=sn, preact=False, dropout=p),
            ResBlockDown(w, 2 * w, down=True, sn=sn, dropout=p),
            ResBlockDown(2 * w, 2 * w, down=False, sn=sn, dropout=p),
        )
        self.head = maybe_sn(nn.Linear(2 * w, 1), sn)
        self.embed = (
            maybe_sn(nn.Embedding(self.num_classes, 2 * w), sn)
            if conditioning == "projection" else None
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                weight = m.parametrizations.weight.original if sn else m.weight
                nn.init.xavier_uniform_(weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "concat":
            x = torch.cat([x, label_maps(labels, self.num_classes, self.size).to(x.dtype)], dim=1)
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(dim=1)
        return out


_RES = {"g_width": 16, "d_width": 16}

register_architecture(Architecture(
    name="wgan-gp",
    description="WGAN-GP (Gulrajani et al. 2017): residual G with class-conditional BN, residual "
                "critic without normalisation taking one-hot label maps, Wasserstein loss with a "
                "gradient penalty (weight gp), n_critic critic updates per G update.",
    build_generator=ResNetGenerator,
    build_discriminator=lambda cfg: ResNetDiscriminator(cfg, sn=False, conditioning="concat"),
    loss="wasserstein",
    defaults=common_defaults(**_RES, lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5, gp=10.0),
))

register_architecture(Architecture(
    name="sngan",
    description="SNGAN with a projection discriminator (Miyato et al. 2018): residual G with "
                "class-conditional BN, spectrally normalised residual D, hinge loss; n_critic 2 "
                "D updates per G update (as in BigGAN).",
    build_generator=ResNetGenerator,
    build_discriminator=lambda cfg: ResNetDiscriminator(cfg, sn=True, conditioning="projection"),
    loss="hinge",
    defaults=common_defaults(**_RES, lr=2e-4, beta1=0.0, beta2=0.9, n_critic=2),
))
