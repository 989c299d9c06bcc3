"""Building blocks shared by the GAN families (small enough to train on a CPU)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..arrays import check_image_size

__all__ = [
    "resolution_plan",
    "upsample",
    "OutputActivation",
    "ConditionalBatchNorm2d",
    "ResBlockUp",
    "ResBlockDown",
    "PixelNorm",
    "MinibatchStd",
    "EqualConv2d",
    "EqualLinear",
    "label_maps",
    "with_label_maps",
    "maybe_sn",
    "dcgan_init",
]


def resolution_plan(image_size: int) -> tuple[int, int]:
    """``(s0, stages)``: side of the first feature map and the number of 2x resampling stages
    between it and the image (the image halved while above 8 px: 28 -> 7 in 2 stages, 32 -> 8 in
    2, 64 -> 8 in 3). Generators upsample ``stages`` times, discriminators downsample as often.
    Unsupported sizes raise a ValueError naming the supported ones."""
    side, stages = check_image_size(image_size), 0
    while side > 8:
        side //= 2
        stages += 1
    return side, stages


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling by an integer factor (faster than F.interpolate on CPU)."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    return (x[:, :, :, None, :, None].expand(n, c, h, factor, w, factor)
            .reshape(n, c, h * factor, w * factor))


class OutputActivation(nn.Module):
    """``tanh`` (images in [-1, 1]) or ``none`` (linear output; sampling clamps)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("tanh", "none"):
            raise ValueError(f"output_activation must be 'tanh' or 'none', got {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) if self.kind == "tanh" else x


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are looked up per class (cGANs with projection D)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        return h * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class ResBlockUp(nn.Module):
    """Pre-activation residual block with 2x nearest upsampling and class-conditional BN."""

    def __init__(self, cin: int, cout: int, num_classes: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(cin, num_classes)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn2 = ConditionalBatchNorm2d(cout, num_classes)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x, labels))
        h = upsample(h)
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h, labels)))
        return h + upsample(self.skip(x))  # a 1x1 conv commutes with nearest upsampling


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation of ``module``'s weight when ``enabled``."""
    return spectral_norm(module) if enabled else module


class ResBlockDown(nn.Module):
    """Discriminator residual block (optional 2x average-pool downsampling, optional SN)."""

    def __init__(self, cin: int, cout: int, *, down: bool, sn: bool, preact: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.down = down
        self.preact = preact
        self.conv1 = maybe_sn(nn.Conv2d(cin, cout, 3, padding=1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(cout, cout, 3, padding=1), sn)
        self.skip = maybe_sn(nn.Conv2d(cin, cout, 1), sn) if (cin != cout or down) else None
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preact else x
        h = self.conv1(h)
        h = self.conv2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.skip is not None:
            if self.preact:
                s = self.skip(s)
                s = F.avg_pool2d(s, 2) if self.down else s
            else:  # first block: pool then convolve the raw image (as in SNGAN)
                s = F.avg_pool2d(s, 2) if self.down else s
                s = self.skip(s)
        return self.drop(h + s)


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit RMS (ProGAN generator)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStd(nn.Module):
    """Append the mean feature standard deviation of each sample's group as one extra channel.

    Without ``labels`` the group is the whole batch (ProGAN's critic). With ``labels`` each sample
    gets the spread of the samples of its own class: in a batch that mixes classes the spread
    *between* classes hides a generator that makes one image per class, and the per-class
    statistic lets the critic see it (issue 17; docs/zoo.md). A group of one sample gets 0. The
    ``1e-8`` under the square root keeps the gradient finite when a group's samples coincide.
    ``num_classes`` bounds the labels, so that grouping needs no device sync to find their range.
    """

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        if labels is None:
            groups, k = torch.zeros(n, dtype=torch.long, device=x.device), 1
        else:
            groups, k = labels, self.num_classes
        member = F.one_hot(groups, k).to(x.dtype)  # (n, k)
        counts = member.sum(0)
        size = counts.clamp(min=1).unsqueeze(1)
        flat = x.flatten(1)
        mean = member.T @ flat / size
        var = member.T @ (flat - mean[groups]).pow(2) / size
        std = torch.where(counts > 1, (var + 1e-8).sqrt().mean(1), torch.zeros_like(counts))
        return torch.cat([x, std[groups].view(n, 1, 1, 1).expand(n, 1, *x.shape[2:])], dim=1)


class EqualConv2d(nn.Module):
    """Conv with the equalised learning rate of ProGAN (He scale applied at run time)."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate of ProGAN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1.0 / math.sqrt(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def label_maps(labels: torch.Tensor, num_classes: int, size: int) -> torch.Tensor:
    """One-hot labels as ``num_classes`` constant feature maps of side ``size``."""
    onehot = F.one_hot(labels, num_classes).to(torch.float32)
    return onehot[:, :, None, None].expand(-1, -1, size, size)


def with_label_maps(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Images ``x`` with the one-hot label maps concatenated as extra channels (D's input)."""
    return torch.cat([x, label_maps(labels, num_classes, x.shape[-1]).to(x.dtype)], dim=1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) for convolutions and linears, N(1, 0.02) for BN gains."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
