"""Downstream classifiers and their registry."""

from __future__ import annotations

import pytest
import torch

from ensemble.downstream.models import (
    CLASSIFIERS,
    ResNet18Cifar,
    SmallCNN,
    create_classifier,
    get_classifier,
    list_classifiers,
    register_classifier,
)
from zoo.registry import get_registry


def test_registry_and_architectures():
    assert {"small-cnn", "resnet18-cifar"} <= set(list_classifiers())
    with pytest.raises(ValueError, match="known: .*small-cnn"):
        create_classifier("vgg-nope")
    net = create_classifier("resnet18-cifar", in_channels=1, num_classes=3)
    assert isinstance(net, ResNet18Cifar)
    stem = net.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.in_channels == 1
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    rgb = create_classifier("small-cnn", in_channels=3, num_classes=4)
    assert rgb(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_registry_refuses_duplicates_and_registers_new_entries():
    assert get_registry("downstream classifier") is CLASSIFIERS
    assert get_classifier("small-cnn") is SmallCNN
    with pytest.raises(ValueError, match="already registered"):
        register_classifier("small-cnn", SmallCNN)
    with pytest.raises(ValueError, match="callable"):
        register_classifier("not-a-factory", 3)

    @register_classifier("tiny-test-net")
    def tiny(in_channels: int = 1, num_classes: int = 2) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))

    try:
        assert "tiny-test-net" in list_classifiers()
        assert create_classifier("tiny-test-net", num_classes=3)(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
    finally:
        CLASSIFIERS.remove("tiny-test-net")
    with pytest.raises(ValueError, match="at least 2 classes"):
        create_classifier("small-cnn", num_classes=1)
