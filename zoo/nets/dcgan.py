"""Convolutional DCGAN-style nets and the families built on them: dcgan, lsgan, wgan, acgan.

The generator projects ``z`` (with the class label: one-hot concatenated, or an embedding
multiplied in as in ACGAN) to a ``4w x s0 x s0`` map and doubles it twice with transposed
convolutions (7->14->28 or 8->16->32). The discriminator mirrors it; the class label enters as
one-hot feature maps concatenated to the image, or is predicted by an auxiliary head (ACGAN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Architecture, register_architecture
from .blocks import OutputActivation, base_size, dcgan_init, label_maps
from .common import common_defaults

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]


class DCGANGenerator(nn.Module):
    """Class-conditional DCGAN generator: ``(z, labels) -> (n, C, H, W)``.

    ``z`` (+ label) -> linear -> ``4w x s0 x s0`` -> transposed conv to ``2w x 2s0`` -> transposed
    conv to the image, with batch norm and ReLU between (as in the DCGAN paper).
    """

    def __init__(self, cfg: dict, conditioning: str = "concat") -> None:
        super().__init__()
        if conditioning not in ("concat", "multiply"):
            raise ValueError(f"conditioning must be 'concat' or 'multiply', got {conditioning!r}")
        self.conditioning = conditioning
        self.num_classes = int(cfg["num_classes"])
        zdim = int(cfg["latent_dim"])
        w = int(cfg["g_width"])
        self.s0 = base_size(cfg["image_size"])
        self.w = w
        if conditioning == "multiply":
            self.embed = nn.Embedding(self.num_classes, zdim)
            fc_in = zdim
        else:
            self.embed = None
            fc_in = zdim + self.num_classes
        self.fc = nn.Linear(fc_in, 4 * w * self.s0 * self.s0, bias=False)
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, int(cfg["channels"]), 4, 2, 1),
            OutputActivation(cfg["output_activation"]),
        )
        dcgan_init(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            h = z * self.embed(labels)
        else:
            h = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        h = self.fc(h).view(-1, 4 * self.w, self.s0, self.s0)
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator; ``aux=True`` adds ACGAN's class head instead of label input."""

    def __init__(self, cfg: dict, *, aux: bool = False, norm: str = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}")
        self.aux = aux
        self.num_classes = int(cfg["num_classes"])
        self.size = int(cfg["image_size"])
        w = int(cfg["d_width"])
        s0 = base_size(self.size)
        p = float(cfg["dropout"])
        cin = int(cfg["channels"]) + (0 if aux else self.num_classes)

        def bn(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if norm == "batch" else nn.Identity()

        def drop() -> nn.Module:
            return nn.Dropout(p) if p > 0 else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(cin, w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            drop(),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=norm != "batch"),
            bn(2 * w),
            nn.LeakyReLU(0.2, inplace=True),
            drop(),
            nn.Flatten(),
        )
        feat = 2 * w * s0 * s0
        self.head = nn.Linear(feat, 1)
        self.classifier = nn.Linear(feat, self.num_classes) if aux else None
        dcgan_init(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor):
        if not self.aux:
            x = torch.cat([x, label_maps(labels, self.num_classes, self.size).to(x.dtype)], dim=1)
        h = self.features(x)
        logits = self.head(h).squeeze(1)
        if self.classifier is not None:
            return logits, self.classifier(h)
        return logits


_CONV = {"g_width": 32, "d_width": 32}

register_architecture(Architecture(
    name="dcgan",
    description="DCGAN (Radford et al. 2016), conditioned by one-hot labels on z and D's input; "
                "non-saturating BCE loss.",
    build_generator=lambda cfg: DCGANGenerator(cfg, "concat"),
    build_discriminator=lambda cfg: DCGANDiscriminator(cfg),
    loss="bce",
    defaults=common_defaults(**_CONV),
))

register_architecture(Architecture(
    name="lsgan",
    description="LSGAN (Mao et al. 2017): the conditional DCGAN nets with the least-squares loss.",
    build_generator=lambda cfg: DCGANGenerator(cfg, "concat"),
    build_discriminator=lambda cfg: DCGANDiscriminator(cfg),
    loss="ls",
    defaults=common_defaults(**_CONV),
))

register_architecture(Architecture(
    name="wgan",
    description="WGAN (Arjovsky et al. 2017): conditional DCGAN critic, Wasserstein loss, weight "
                "clipping to [-clip, clip], n_critic RMSprop critic updates per G update.",
    build_generator=lambda cfg: DCGANGenerator(cfg, "concat"),
    build_discriminator=lambda cfg: DCGANDiscriminator(cfg),
    loss="wasserstein",
    defaults=common_defaults(**_CONV, optimizer="rmsprop", lr=5e-5, n_critic=5, clip=0.01),
))

register_architecture(Architecture(
    name="acgan",
    description="ACGAN (Odena et al. 2017): label embedding multiplies z; the discriminator has an "
                "auxiliary classifier (cross-entropy weighted by aux_weight) instead of label input.",
    build_generator=lambda cfg: DCGANGenerator(cfg, "multiply"),
    build_discriminator=lambda cfg: DCGANDiscriminator(cfg, aux=True),
    loss="bce",
    defaults=common_defaults(**_CONV, aux_weight=1.0),
))
