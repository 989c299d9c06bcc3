"""Downstream classifiers: the networks trained on synthetic data, and their registry (timm style).

:class:`SmallCNN` is a fast stand-in for quick CPU runs; :class:`ResNet18Cifar` is the reference
classifier of METHOD.md §5 (a CIFAR-style ResNet-18). Both are registered in
``zoo.registry.Registry("downstream classifier")``: :func:`register_classifier` adds a factory
``factory(in_channels=, num_classes=) -> nn.Module``, :func:`get_classifier` returns it (unknown
names list the known ones), :func:`list_classifiers` names them, :func:`create_classifier` builds
a freshly initialised network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zoo.registry import Registry

__all__ = [
    "SmallCNN",
    "ResNet18Cifar",
    "CLASSIFIERS",
    "register_classifier",
    "get_classifier",
    "list_classifiers",
    "create_classifier",
]


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: a few seconds per epoch of 28x28 images on a CPU."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32,
                 dropout: float = 0.2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(in_channels, width), nn.MaxPool2d(2),
            block(width, 2 * width), nn.MaxPool2d(2),
            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18Cifar(nn.Module):
    """ResNet-18, CIFAR style: 3x3 stride-1 stem, no max-pool (the reference classifier)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _check_factory(name: str, factory: Any) -> None:
    if not callable(factory):
        raise ValueError(f"downstream classifier {name!r} must be a callable "
                         f"factory(in_channels=, num_classes=) -> nn.Module, got {type(factory).__name__}")


#: Every downstream classifier, by name (``small-cnn``, ``resnet18-cifar``, and any registered).
CLASSIFIERS: Registry[Callable[..., nn.Module]] = Registry("downstream classifier", check=_check_factory)


def register_classifier(name: str, factory: Callable[..., nn.Module] | None = None, *,
                        overwrite: bool = False):
    """Register ``factory(in_channels=, num_classes=) -> nn.Module`` under ``name``.

    Without ``factory``, a decorator. A name registered twice is refused unless ``overwrite=True``.
    """
    return CLASSIFIERS.register(name, factory, overwrite=overwrite)


def get_classifier(name: str) -> Callable[..., nn.Module]:
    """The factory registered as ``name``; unknown names raise ``ValueError`` listing the known."""
    return CLASSIFIERS.get(name)


def list_classifiers() -> list[str]:
    """Names accepted by :func:`create_classifier`."""
    return CLASSIFIERS.list()


def create_classifier(name: str, in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """A freshly initialised classifier (seed torch first for a reproducible initialisation)."""
    factory = get_classifier(name)
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    return factory(in_channels=in_channels, num_classes=num_classes)


register_classifier("small-cnn", SmallCNN)
register_classifier("resnet18-cifar", ResNet18Cifar)
