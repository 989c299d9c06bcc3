"""Convolutional DCGAN-style nets and the families built on them: dcgan, lsgan, wgan, acgan.

The generator projects ``z`` (with the class label: one-hot concatenated, or an embedding
multiplied in as in ACGAN) to a ``4w x s0 x s0`` map and doubles it with transposed convolutions,
halving the channels, until it reaches the image (7->14->28, 8->16->32 or 8->16->32->64; see
:func:`.blocks.resolution_plan`). The discriminator mirrors it; the class label enters as
one-hot feature maps concatenated to the image, or is predicted by an auxiliary head (ACGAN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Architecture, register_architecture
from .blocks import OutputActivation, dcgan_init, resolution_plan, with_label_maps
from .common import common_defaults

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]


class DCGANGenerator(nn.Module):
    """Class-conditional DCGAN generator: ``(z, labels) -> (n, C, H, W)``.

    ``z`` (+ label) -> linear -> ``4w x s0 x s0`` -> one transposed conv per 2x stage (channels
    halved each time: ``2w``, then ``w`` at 64 px) -> the image, with batch norm and ReLU before
    each transposed conv (as in the DCGAN paper).
    """

    def __init__(self, cfg: dict, conditioning: str = "concat") -> None:
        super().__init__()
        if conditioning not in ("concat", "multiply"):
            raise ValueError(f"conditioning must be 'concat' or 'multiply', got {conditioning!r}")
        self.conditioning = conditioning
        self.num_classes = int(cfg["num_classes"])
        zdim = int(cfg["latent_dim"])
        w = int(cfg["g_width"])
        self.s0, stages = resolution_plan(cfg["image_size"])
        widths = [(4 * w) >> k for k in range(stages)]  # input channels of each 2x stage
        self.c0 = widths[0]
        if conditioning == "multiply":
            self.embed = nn.Embedding(self.num_classes, zdim)
            fc_in = zdim
        else:
            self.embed = None
            fc_in = zdim + self.num_classes
        self.fc = nn.Linear(fc_in, self.c0 * self.s0 * self.s0, bias=False)
        outs = widths[1:] + [int(cfg["channels"])]
        layers: list[nn.Module] = []
        for k, (cin, cout) in enumerate(zip(widths, outs, strict=True)):
            last = k == stages - 1  # the last stage outputs the image (with a bias, no BN after)
            layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=last)]
        self.net = nn.Sequential(*layers, OutputActivation(cfg["output_activation"]))
        dcgan_init(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            h = z * self.embed(labels)
        else:
            h = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        h = self.fc(h).view(-1, self.c0, self.s0, self.s0)
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator; ``aux=True`` adds ACGAN's class head instead of label input.

    One strided conv per 2x stage (``w``, ``2w``, then ``4w`` at 64 px channels), batch norm on
    all but the first, LeakyReLU 0.2, optional dropout; linear heads on the flattened map.
    """

    def __init__(self, cfg: dict, *, aux: bool = False, norm: str = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}")
        self.aux = aux
        self.num_classes = int(cfg["num_classes"])
        w = int(cfg["d_width"])
        s0, stages = resolution_plan(cfg["image_size"])
        p = float(cfg["dropout"])
        widths = [w << k for k in range(stages)]  # output channels of each 2x stage
        cin = int(cfg["channels"]) + (0 if aux else self.num_classes)
        layers: list[nn.Module] = []
        for k, (c_in, c_out) in enumerate(zip([cin] + widths[:-1], widths, strict=True)):
            normed = k > 0 and norm == "batch"  # no BN on the first layer (as in the DCGAN paper)
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not normed))
            if k > 0:
                layers.append(nn.BatchNorm2d(c_out) if normed else nn.Identity())
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            layers.append(nn.Dropout(p) if p > 0 else nn.Identity())
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat = widths[-1] * s0 * s0
        self.head = nn.Linear(feat, 1)
        self.classifier = nn.Linear(feat, self.num_classes) if aux else None
        dcgan_init(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor):
        if not self.aux:
            x = with_label_maps(x, labels, self.num_classes)
        h = self.features(x)
        logits = self.head(h).squeeze(1)
        if self.classifier is not None:
            return logits, self.classifier(h)
        return logits


_CONV = {"g_width": 32, "d_width": 32}


def _register(name: str, description: str, loss: str, *, conditioning: str = "concat",
              aux: bool = False, **defaults: object) -> None:
    """Register a family built on the DCGAN nets with its own loss and defaults."""
    register_architecture(Architecture(
        name=name,
        description=description,
        build_generator=lambda cfg: DCGANGenerator(cfg, conditioning),
        build_discriminator=lambda cfg: DCGANDiscriminator(cfg, aux=aux),
        loss=loss,
        defaults=common_defaults(**_CONV, **defaults),
    ))


_register("dcgan", "DCGAN (Radford et al. 2016), conditioned by one-hot labels on z and D's input; "
                   "non-saturating BCE loss.", "bce")
# lsgan takes two D steps per G step: with one, its samples for the majority class were judged
# the other class 41% of the time at 2,000 iterations (label agreement 0.79, d 0.56 in
# benchmarks/zoo_quality.py); with two, label agreement and d are higher (docs/zoo.md).
_register("lsgan", "LSGAN (Mao et al. 2017): the conditional DCGAN nets with the least-squares loss, "
                   "n_critic D updates per G update.",
          "ls", n_critic=2)
_register("wgan", "WGAN (Arjovsky et al. 2017): conditional DCGAN critic, Wasserstein loss, weight "
                  "clipping to [-clip, clip], n_critic RMSprop critic updates per G update.",
          "wasserstein", optimizer="rmsprop", lr=5e-5, n_critic=5, clip=0.01)
_register("acgan", "ACGAN (Odena et al. 2017): label embedding multiplies z; the discriminator has an "
                   "auxiliary classifier (cross-entropy weighted by aux_weight) instead of label input.",
          "bce", conditioning="multiply", aux=True, aux_weight=1.0)
