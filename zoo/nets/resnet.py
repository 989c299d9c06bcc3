"""Residual nets and the families built on them: wgan-gp and sngan.

The generator is a residual upsampler, one block per 2x stage (two at 28 / 32 px, three at 64;
see :func:`.blocks.resolution_plan`), whose batch norms are class-conditional (gain and bias per
class). The discriminator is a residual downsampler with as many 2x stages; the class enters either as one-hot
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
    maybe_sn,
    resolution_plan,
    with_label_maps,
)
from .common import common_defaults

__all__ = ["ResNetGenerator", "ResNetDiscriminator"]


class ResNetGenerator(nn.Module):
    """Class-conditional residual generator: ``(z, labels) -> (n, C, H, W)``.

    ``z`` -> linear -> ``4w x s0 x s0`` -> one :class:`ResBlockUp` per 2x stage (``block1``,
    ``block2``, ...; channels halved each stage down to ``w``) -> conditional BN, ReLU, 3x3 conv.
    """

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        w = int(cfg["g_width"])
        k = int(cfg["num_classes"])
        self.s0, self.stages = resolution_plan(cfg["image_size"])
        widths = [max((4 * w) >> i, w) for i in range(self.stages + 1)]  # 4w, 2w, w[, w]
        self.c0 = widths[0]
        self.fc = nn.Linear(int(cfg["latent_dim"]), self.c0 * self.s0 * self.s0)
        for i in range(self.stages):  # named block1, block2, ... as saved checkpoints expect
            self.add_module(f"block{i + 1}", ResBlockUp(widths[i], widths[i + 1], k))
        self.bn = ConditionalBatchNorm2d(w, k)
        self.out = nn.Conv2d(w, int(cfg["channels"]), 3, padding=1)
        self.act = OutputActivation(cfg["output_activation"])
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c0, self.s0, self.s0)
        for i in range(self.stages):
            h = getattr(self, f"block{i + 1}")(h, labels)
        h = F.relu(self.bn(h, labels))
        return self.act(self.out(h))


class ResNetDiscriminator(nn.Module):
    """Residual discriminator with label conditioning by ``projection`` or ``concat``.

    One downsampling :class:`ResBlockDown` per 2x stage (``w``, ``2w``, then ``4w`` at 64 px
    channels) and one more at the last resolution, ReLU, sum over space, linear head.
    """

    def __init__(self, cfg: dict, *, sn: bool, conditioning: str) -> None:
        super().__init__()
        if conditioning not in ("projection", "concat"):
            raise ValueError(f"conditioning must be 'projection' or 'concat', got {conditioning!r}")
        self.conditioning = conditioning
        self.num_classes = int(cfg["num_classes"])
        w = int(cfg["d_width"])
        p = float(cfg["dropout"])
        _, stages = resolution_plan(cfg["image_size"])
        widths = [w << i for i in range(stages)]  # output channels of each 2x stage
        cin = int(cfg["channels"]) + (self.num_classes if conditioning == "concat" else 0)
        # the first block sees the raw image: no pre-activation (as in SNGAN)
        blocks = [ResBlockDown(c_in, c_out, down=True, sn=sn, preact=i > 0, dropout=p)
                  for i, (c_in, c_out) in enumerate(zip([cin] + widths[:-1], widths, strict=True))]
        top = widths[-1]
        self.blocks = nn.Sequential(*blocks, ResBlockDown(top, top, down=False, sn=sn, dropout=p))
        self.head = maybe_sn(nn.Linear(top, 1), sn)
        self.embed = (
            maybe_sn(nn.Embedding(self.num_classes, top), sn)
            if conditioning == "projection" else None
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                weight = m.parametrizations.weight.original if sn else m.weight
                nn.init.xavier_uniform_(weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "concat":
            x = with_label_maps(x, labels, self.num_classes)
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(dim=1)
        return out


_RES = {"g_width": 16, "d_width": 16}


def _register(name: str, description: str, loss: str, *, sn: bool, conditioning: str,
              **defaults: object) -> None:
    """Register a family built on the residual nets with its own D, loss and defaults."""
    register_architecture(Architecture(
        name=name,
        description=description,
        build_generator=ResNetGenerator,
        build_discriminator=lambda cfg: ResNetDiscriminator(cfg, sn=sn, conditioning=conditioning),
        loss=loss,
        defaults=common_defaults(**_RES, **defaults),
    ))


_register("wgan-gp", "WGAN-GP (Gulrajani et al. 2017): residual G with class-conditional BN, residual "
                     "critic without normalisation taking one-hot label maps, Wasserstein loss with a "
                     "gradient penalty (weight gp), n_critic critic updates per G update.",
          "wasserstein", sn=False, conditioning="concat",
          lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5, gp=10.0)
_register("sngan", "SNGAN with a projection discriminator (Miyato et al. 2018): residual G with "
                   "class-conditional BN, spectrally normalised residual D, hinge loss; n_critic 2 "
                   "D updates per G update (as in BigGAN).",
          "hinge", sn=True, conditioning="projection", lr=2e-4, beta1=0.0, beta2=0.9, n_critic=2)
